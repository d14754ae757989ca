"""The scheduler: jobs as registry rows, APScheduler in the appliance process, and the closed
loop of retraining, gating, deploying, watching and rolling back."""
