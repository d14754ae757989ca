"""The review loop (active learning): answers a person should look at (uncertain, or rated low
soon after) keep their input; a person accepts or corrects each, and the reviewed ones become
rows of a new dataset version that retraining picks up. See docs/review.md."""
