"""The words of the synthetic classified ads (see `ad_text.py`): per category its nouns, details,
materials, brands and price range, and the phrases every category shares.

Categories overlap on purpose: brands, materials, colours, "adjustable strap", millilitres, and
details that name another category's product ("fits a water bottle") make no single word a
perfect rule, while the combination still tells the category apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    nouns: tuple[str, ...]
    details: tuple[str, ...]  # "{n}" is filled from `numbers`
    numbers: tuple[int, int]
    materials: tuple[str, ...]
    brands: tuple[str, ...]
    price: tuple[int, int]  # euros, inclusive
    price_step: int = 1


# Brands several categories sell under: a brand alone never gives the category away.
_HOME, _OUTDOOR, _CITY = "Nordhem", "Alpina", "Urbano"

WORDS: dict[str, Category] = {
    "mug": Category(
        ("mug", "coffee mug", "tea cup", "cup", "travel mug", "espresso cup"),
        ("holds {n} ml", "dishwasher safe", "microwave safe", "keeps coffee hot",
         "no chips or cracks", "handle intact", "set of two, both the same",
         "perfect for a morning tea"),
        (200, 450), ("ceramic", "porcelain", "stoneware", "glass"),
        (_HOME, "Kaffeehaus", "Potter & Co"), (2, 15),
    ),
    "shoe": Category(
        ("shoes", "sneakers", "trainers", "boots", "running shoes", "loafers"),
        ("size {n}", "EU size {n}", "soles in great shape", "laces included", "worn twice",
         "comfortable for long walks", "original box included", "non-slip sole"),
        (36, 46), ("leather", "suede", "canvas"),
        (_OUTDOOR, _CITY, "Stridewell", "Pace"), (10, 80),
    ),
    "lamp": Category(
        ("lamp", "desk lamp", "floor lamp", "bedside lamp", "reading light", "table lamp"),
        ("bulb included", "E27 fitting", "warm white light", "adjustable arm", "dimmable",
         "cable is {n} m long", "works perfectly", "switch on the cord"),
        (1, 3), ("metal", "glass", "wood"),
        (_HOME, "Lumina", "Brightside"), (8, 60),
    ),
    "chair": Category(
        ("chair", "armchair", "office chair", "dining chair", "stool", "rocking chair"),
        ("seat height {n} cm", "sturdy legs", "no wobble", "cushion included",
         "solid frame", "stackable", "swivel base", "pairs well with a floor lamp"),
        (40, 55), ("wood", "metal", "leather", "plastic"),
        (_HOME, "Sitwell", "Oakline"), (15, 120),
    ),
    "bag": Category(
        ("bag", "backpack", "handbag", "tote bag", "shoulder bag", "travel bag"),
        ("lots of pockets", "zip closure", "adjustable strap", "fits a laptop",
         "lining intact", "{n} litre capacity", "waterproof", "fits a water bottle and a book"),
        (10, 40), ("leather", "canvas", "nylon"),
        (_OUTDOOR, _CITY, "Carryall"), (10, 90),
    ),
    "book": Category(
        ("book", "novel", "paperback", "hardcover", "cookbook", "textbook"),
        ("{n} pages", "first edition", "no markings inside", "spine uncreased",
         "signed by the author", "great read", "a story about a hat maker",
         "has a chapter on classic cars"),
        (120, 600), (),
        ("Penwick", "Folio House", "Inkwell"), (2, 25),
    ),
    "bottle": Category(
        ("bottle", "water bottle", "flask", "glass bottle", "drinks bottle", "carafe"),
        ("holds {n} ml", "leak proof lid", "keeps drinks cold for 24 hours", "BPA free",
         "fits a cup holder", "screw cap", "fits in a bag side pocket", "easy to clean"),
        (500, 1000), ("glass", "steel", "plastic"),
        (_HOME, _OUTDOOR, "Hydra"), (3, 25),
    ),
    "hat": Category(
        ("hat", "cap", "beanie", "sun hat", "fedora", "bucket hat"),
        ("one size fits most", "size {n} cm", "keeps the sun off", "warm for winter",
         "brim in good shape", "adjustable strap", "fits in a bag easily", "never washed"),
        (54, 60), ("wool", "cotton", "straw", "felt"),
        (_OUTDOOR, _CITY, "Milliner"), (5, 35),
    ),
    "car": Category(
        ("car", "hatchback", "sedan", "estate car", "city car", "family car"),
        ("{n} thousand km on the clock", "full service history", "manual gearbox",
         "automatic", "diesel", "new tyres", "cup holders front and back",
         "roof rack for bags"),
        (20, 180), (),
        (_CITY, "Vanta", "Corvo"), (1500, 18000), 50,
    ),
}  # fmt: skip

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "black", "white", "grey", "brown")
CONDITIONS: dict[str, tuple[str, ...]] = {
    "new": ("Brand new, still in the box.", "Never used.", "New with tags."),
    "like new": ("Like new.", "Used once, like new.", "Barely used."),
    "good": ("Good condition.", "In good shape.", "Lightly used, all good."),
    "fair": ("Some signs of wear.", "Fair condition, works fine.", "A few marks, priced to match."),
}
LOGISTICS = (
    "Pickup only.", "Can post for a small fee.", "Cash on collection.", "Smoke-free home.",
    "No offers.", "Price is firm.", "Open to offers.", "Message me for more photos.",
    "Collection from the city centre.", "Quick sale wanted.",
)  # fmt: skip
# Titles that name no product: the text has to carry the category.
GENERIC_TITLES = (
    "Moving sale", "Must go this week", "Bargain!", "Clearing out the flat", "Great condition",
    "Selling cheap", "Barely used, good price", "Spring clean", "Offers welcome",
)  # fmt: skip
