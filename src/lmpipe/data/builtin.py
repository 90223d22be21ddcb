"""Built-in, offline data source: a seeded generator of English-like movie reviews.

The reviews come from a small grammar designed so that the sentiment label *cannot* be read off a bag
of words but *can* be computed exactly by a reader that follows word order:

* negation flips a clause ("the pacing was never dull" is positive);
* contrast picks the deciding clause: the clause after "but" / "yet" / "however" / "still" wins, and
  in "although X, Y" / "Y, even though X" / "despite X, Y" the main clause Y wins;
* intensity breaks ties between unmarked clauses of opposite polarity: "the plot was slightly dull,
  and the acting was truly superb" is positive because the strongly intensified clause wins;
* an explicitly marked verdict sentence ("Overall, ...", "In the end, ...") overrides every other
  sentence of the review;
* a score ("I would give it seven out of ten") is a clause like any other: high is positive.

Negation and overturned clauses put sentiment words on the "wrong" side: about a third of all
occurrences of positive words are in negative reviews (and vice versa), so a bag of words only gets
the easy part of the data (single-opinion reviews, which are mostly unnegated). With default
settings, TF-IDF + logistic regression trained on 4000 reviews reaches 0.66-0.71 accuracy with
unigrams and about the same with 1-2-grams (0.73 / 0.76 with 20000 reviews); the rule is exact.
`_review_sentiment` is a reference reader that recovers the noise-free label from the text alone;
the tests use it to show that the label is a function of the text.

Public API: `LABEL_NAMES`, `generate_reviews`, `generate_corpus`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

import pandas as pd

LABEL_NAMES: tuple[str, str] = ("negative", "positive")  # label id 0, 1

# --------------------------------------------------------------------------------------------------
# Sentiment lexicon. Every sentiment-bearing word the grammar emits is listed here; neutral filler
# must never use one of them (the reference reader relies on that, and the tests check it).
# --------------------------------------------------------------------------------------------------

POSITIVE_ADJECTIVES: tuple[str, ...] = (
    "great", "superb", "brilliant", "excellent", "wonderful", "outstanding", "terrific", "marvelous",
    "fantastic", "splendid", "remarkable", "impressive", "compelling", "engaging", "gripping",
    "absorbing", "riveting", "captivating", "enthralling", "charming", "delightful", "lovely",
    "beautiful", "gorgeous", "stunning", "elegant", "graceful", "moving", "touching", "heartfelt",
    "powerful", "memorable", "clever", "witty", "smart", "sharp", "inventive", "original", "fresh",
    "imaginative", "inspired", "assured", "confident", "polished", "accomplished", "masterful",
    "thoughtful", "nuanced", "subtle", "rich", "vivid", "lively", "energetic", "brisk", "tight",
    "funny", "hilarious", "warm", "satisfying", "rewarding", "convincing", "believable", "authentic",
    "strong", "solid", "effective", "good", "fine", "enjoyable", "entertaining", "thrilling",
    "exciting", "haunting", "luminous", "dazzling", "exquisite", "sublime", "affecting", "poignant",
    "breathtaking", "magnificent", "superlative", "tender", "playful", "confident", "ambitious",
)
NEGATIVE_ADJECTIVES: tuple[str, ...] = (
    "bad", "poor", "weak", "awful", "terrible", "dreadful", "horrible", "atrocious", "abysmal",
    "dismal", "dull", "boring", "tedious", "tiresome", "monotonous", "dreary", "bland", "flat",
    "lifeless", "listless", "sluggish", "plodding", "slow", "clumsy", "awkward", "clunky", "messy",
    "muddled", "confusing", "incoherent", "shallow", "hollow", "thin", "stale", "tired", "trite",
    "cliched", "predictable", "derivative", "generic", "forgettable", "uninspired", "lazy", "sloppy",
    "careless", "wooden", "stilted", "stiff", "cheesy", "corny", "silly", "pointless", "aimless",
    "overlong", "bloated", "pretentious", "overwrought", "shrill", "grating", "annoying", "irritating",
    "painful", "unbearable", "disappointing", "mediocre", "lackluster", "underwhelming",
    "unconvincing", "implausible", "lame", "frustrating", "joyless", "drab", "muddy", "murky",
    "amateurish", "ponderous", "sloppy", "tepid", "insipid", "vapid", "laughable", "uneven",
)
POSITIVE_ADJECTIVES = tuple(dict.fromkeys(POSITIVE_ADJECTIVES))  # drop accidental duplicates
NEGATIVE_ADJECTIVES = tuple(dict.fromkeys(NEGATIVE_ADJECTIVES))

# Verbs of liking: (past tense, base form).
_POS_VERBS = (("loved", "love"), ("enjoyed", "enjoy"), ("liked", "like"), ("admired", "admire"),
              ("adored", "adore"), ("savored", "savor"), ("cherished", "cherish"))
_NEG_VERBS = (("hated", "hate"), ("disliked", "dislike"), ("loathed", "loathe"),
              ("resented", "resent"), ("despised", "despise"), ("detested", "detest"))
# Verbs with the film as subject: (3rd person singular, base form).
_POS_FILM_VERBS = (("succeeds", "succeed"), ("delivers", "deliver"), ("soars", "soar"),
                   ("satisfies", "satisfy"), ("shines", "shine"))
_NEG_FILM_VERBS = (("fails", "fail"), ("disappoints", "disappoint"), ("misfires", "misfire"),
                   ("drags", "drag"), ("flounders", "flounder"))
# Nouns that carry the verdict: "it was a real gem", "it was far from a disaster".
_POS_NOUNS = ("gem", "masterpiece", "triumph", "joy", "delight", "treat", "pleasure", "marvel")
_NEG_NOUNS = ("mess", "disaster", "letdown", "failure", "chore", "slog", "ordeal", "bore", "dud")
_POS_MISC = ("worth", "recommend")  # "is (not) worth watching", "I would (not) recommend it"
_NEG_MISC = ("waste", "regret", "regretted", "skip")

LEXICON: dict[str, int] = {}
for _words, _pol in (
    (POSITIVE_ADJECTIVES, 1), (NEGATIVE_ADJECTIVES, -1), (_POS_NOUNS, 1), (_NEG_NOUNS, -1),
    (_POS_MISC, 1), (_NEG_MISC, -1),
    ([w for pair in _POS_VERBS + _POS_FILM_VERBS for w in pair], 1),
    ([w for pair in _NEG_VERBS + _NEG_FILM_VERBS for w in pair], -1),
):
    for _w in _words:
        assert LEXICON.get(_w, _pol) == _pol, f"{_w!r} has both polarities"
        LEXICON[_w] = _pol

# Each negated template contains exactly one of these tokens (or a "...n't" contraction).
NEGATORS: frozenset[str] = frozenset({"not", "never", "hardly", "far", "no", "nobody", "cannot"})

# Intensity tiers: 1 = weak, 2 = unmarked, 3 = strong.
STRONG_INTENSIFIERS = ("very", "really", "truly", "extremely", "incredibly", "remarkably", "utterly",
                       "thoroughly", "genuinely", "deeply", "exceptionally", "absolutely",
                       "downright", "consistently", "strikingly", "enormously")
WEAK_INTENSIFIERS = ("a bit", "a little", "somewhat", "slightly", "fairly", "rather", "mildly",
                     "moderately", "a touch", "faintly", "marginally", "occasionally")

# --------------------------------------------------------------------------------------------------
# Neutral vocabulary: names, titles, aspects, plot material.
# --------------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Mara", "Elias", "Tomas", "Ines", "Jonah", "Priya", "Felix", "Nadia", "Oscar", "Lena", "Victor",
    "Hana", "Rafael", "Greta", "Milo", "Anya", "Silas", "Talia", "Dorian", "Yara", "Caleb", "Freya",
    "Marcus", "Leila", "Arthur", "Noor", "Ivan", "Clara", "Jasper", "Rosa", "Hugo", "Selma", "Theo",
    "Amara", "Bruno", "Ingrid", "Emil", "Zara", "Declan", "Mira", "Otto", "Celeste", "Ruben", "Esme",
    "Lucian", "Petra", "Cyrus", "Maren", "Idris", "Sabine", "August", "Lila", "Desmond", "Thea",
    "Kofi", "Nina", "Anton", "Beatrix", "Malik", "Vera", "Casimir", "Odette", "Ezra", "Paloma",
    "Frederik", "Ayla", "Gideon", "Juno", "Lorenzo", "Sunniva", "Matteo", "Kira", "Bastian",
    "Delphine", "Omar", "Wren", "Leopold", "Iris", "Tobias", "Alma", "Rowan", "Ximena", "Magnus",
    "Elodie", "Quentin", "Saoirse", "Dmitri", "Fiona", "Henrik", "Lucia", "Ambrose", "Nell",
    "Cassius", "Imogen", "Florian", "Maeve", "Laszlo", "Ottilie", "Soren", "Yasmin", "Ignatius",
    "Carmen", "Jules", "Rhea", "Benedikt", "Anouk", "Konrad", "Marisol", "Edwin", "Tove", "Ansel",
    "Helga", "Lionel", "Romy", "Percival", "Asha", "Gustav", "Liesel", "Barnaby", "Noemi", "Cormac",
    "Elsa", "Dario", "Wilhelmina", "Fenwick", "Orla", "Stellan", "Agathe", "Viggo", "Bianca",
    "Roland", "Kaia", "Mateo", "Pilar", "Aurelio", "Sigrid", "Emeric", "Ondine", "Tariq", "Ulla",
    "Cosima", "Bertrand", "Niamh", "Evander", "Ludmila", "Rasmus", "Oriana", "Thaddeus", "Zofia",
    "Adaeze", "Bjorn", "Catalina", "Dashiell", "Eamon", "Filippa", "Gaspard", "Honora", "Isidore",
    "Jarrah", "Kenji", "Lavinia", "Mordecai", "Nicasio", "Ophelia", "Pasquale", "Rosalind",
    "Severin", "Tamsin", "Ulysses", "Valeska", "Wendeline", "Yusuf", "Zebulon", "Anneliese",
    "Bartholomew", "Cressida", "Dagny", "Eberhard", "Fernanda", "Gwendolyn", "Hakon", "Ilse",
    "Joaquin", "Katarina", "Leontyne", "Maximilian", "Nikolai", "Octavia", "Philippa", "Radomir",
    "Svetlana", "Tiberius", "Vivienne", "Wolfgang", "Xavier", "Yevgenia", "Zuzana", "Akira",
)
LAST_NAMES = (
    "Ellison", "Varga", "Okafor", "Lindqvist", "Moreau", "Castellano", "Whitlock", "Brandt",
    "Nakamura", "Ferreira", "Holloway", "Petrova", "Adeyemi", "Sorensen", "Marchetti", "Quill",
    "Abernathy", "Delacroix", "Haverford", "Kowalski", "Blackwood", "Ashby", "Rasmussen", "Okonkwo",
    "Valdez", "Thorne", "Kessler", "Lambert", "Morrow", "Novak", "Pemberton", "Rinaldi", "Sato",
    "Tennant", "Underwood", "Vance", "Wexler", "Yilmaz", "Zeller", "Albrecht", "Bellamy", "Carver",
    "Dunmore", "Eriksen", "Falk", "Galloway", "Hargrove", "Iverson", "Jansen", "Kilbride",
    "Lockhart", "Mercer", "Nyberg", "Osei", "Prescott", "Quintero", "Radcliffe", "Tremblay",
    "Ulrich", "Verhoeven", "Winslow", "Yates", "Zamora", "Achebe", "Bergstrom", "Calloway",
    "Drummond", "Esposito", "Fontaine", "Gallagher", "Hartmann", "Jovanovic", "Kaplan", "Larkin",
    "Mendez", "Nilsson", "Paulsen", "Rourke", "Sandoval", "Takahashi", "Upton", "Voss", "Whitaker",
    "Ziegler", "Aldana", "Brennan", "Corrigan", "Dvorak", "Fairbanks", "Gutierrez", "Hale",
    "Ishikawa", "Kerensky", "Lowell", "Maddox", "Navarro", "Oyelaran", "Pryce", "Quinlan",
    "Rademacher", "Sinclair", "Thackeray", "Vasquez", "Wolcott", "Yamada", "Arkwright", "Bishop",
    "Crane", "Devereux", "Ekwueme", "Fitzgerald", "Grimaldi", "Halvorsen", "Ingram", "Jablonski",
    "Kincaid", "Lindgren", "Montague", "Nakashima", "Ostrowski", "Pellegrini", "Ravenscroft",
    "Schreiber", "Talbot", "Urquhart", "Vickers", "Wainwright", "Abara", "Bexley", "Cordova",
    "Delgado", "Everhart", "Farrow", "Greenhalgh", "Holmberg", "Jaramillo", "Kovacs", "Lacroix",
    "Molnar", "Nwosu", "Ortega", "Penrose", "Rockwell", "Salazar", "Trevino", "Valentin",
    "Whitford", "Beaumont", "Castile", "Dufresne", "Engstrom", "Frost", "Gaskell", "Hendry",
    "Illingworth", "Janssen", "Kruger", "Lavigne", "Mortimer", "Nightingale", "Oakes", "Pickering",
    "Redmond", "Strand", "Tolliver", "Vidal", "Wyatt", "Mbeki", "Haddad", "Szabo", "Lindholm",
    "Aguilar", "Blomqvist", "Carrington", "Dabrowski", "Eichmann", "Finnegan", "Gadsby", "Hollister",
    "Ivanova", "Jorgensen", "Kavanagh", "Lombardi", "Mastroianni", "Nordstrom", "Oduya", "Pacheco",
    "Rutherford", "Silvestri", "Thornbury", "Uchenna", "Vanterpool", "Westergaard", "Yoshida",
    "Zabrowski", "Atwater", "Buchanan", "Cavendish", "Dimitriou", "Escobar", "Fairchild",
    "Gruenwald", "Hawthorne", "Iglesias", "Jessup", "Kristiansen", "Lazarus", "Mcallister",
    "Nussbaum", "Overholt", "Pritchard", "Quartermaine", "Rosenthal", "Stavros", "Trautmann",
    "Umberto", "Vogel", "Wetherby", "Ximenez", "Yardley", "Zimmerman",
)
TITLE_NOUNS = (
    "Harbor", "Lantern", "Orchard", "Meridian", "Tide", "Ember", "Citadel", "Compass", "Garden",
    "Archive", "River", "Mountain", "Signal", "Mirror", "Cathedral", "Frontier", "Canyon",
    "Lighthouse", "Labyrinth", "Railway", "Island", "Monsoon", "Silence", "Echo", "Glacier",
    "Prairie", "Carnival", "Ferryman", "Cartographer", "Orchestra", "Telegraph", "Vineyard",
    "Observatory", "Pilgrim", "Harvest", "Avalanche", "Quarry", "Lagoon", "Sparrow", "Falcon",
    "Heron", "Wolf", "Fox", "Raven", "Tiger", "Sailor", "Stranger", "Widow", "Inheritance",
    "Covenant", "Ledger", "Furnace", "Tapestry", "Threshold", "Equinox", "Solstice", "Horizon",
    "Kingdom", "Empire", "Paradox", "Cipher", "Alibi", "Requiem", "Ballad", "Sonata", "Overture",
    "Carousel", "Pendulum", "Hourglass", "Satellite", "Comet", "Nebula", "Orbit", "Voyage",
    "Passage", "Crossing", "Border", "Checkpoint", "Embassy", "Dynasty", "Heiress", "Smuggler",
    "Watchtower", "Foundry", "Mill", "Tannery", "Monastery", "Motel", "Diner", "Casino", "Racetrack",
    "Regatta", "Parade", "Masquerade", "Eclipse", "Blizzard", "Drought", "Flood", "Wildfire",
    "Thunder", "Fog", "Dune", "Oasis", "Mirage", "Caravan", "Bazaar", "Kite", "Anchor", "Keel",
    "Atlas", "Almanac", "Chronicle", "Testament", "Hymn", "Tenant", "Locksmith", "Lullaby",
    "Aviary", "Barricade", "Cellar", "Dominion", "Estuary", "Fjord", "Gallows", "Hinterland",
    "Icebreaker", "Juggler", "Keeper", "Lamplighter", "Marshland", "Nomad", "Outpost", "Pavilion",
    "Quarantine", "Rampart", "Sanctuary", "Trellis", "Undertow", "Vagabond", "Wayfarer", "Zeppelin",
    "Apothecary", "Belfry", "Cloister", "Drifter", "Escapement", "Foghorn", "Gondolier", "Hearth",
)
TITLE_ADJECTIVES = (
    "Silent", "Crimson", "Distant", "Last", "Northern", "Southern", "Eastern", "Hidden", "Burning",
    "Frozen", "Golden", "Silver", "Iron", "Paper", "Glass", "Velvet", "Scarlet", "Midnight",
    "Forgotten", "Seventh", "Broken", "Secret", "Quiet", "Endless", "Final", "Lost", "Wandering",
    "Sleeping", "Falling", "Rising", "Drowned", "Painted", "Wild", "Blue", "Grey", "Black", "White",
    "Amber", "Ivory", "Copper", "Salt", "Ashen", "Restless", "Lonely", "Sunken", "Crooked",
    "Twelfth", "Borrowed", "Stolen", "Unfinished", "Invisible", "Electric", "Neon", "Mechanical",
)
GENRES = ("thriller", "comedy", "drama", "western", "musical", "romance", "mystery", "horror film",
          "war film", "biopic", "documentary", "heist movie", "satire", "period piece",
          "science fiction film", "family film", "crime drama", "road movie", "ghost story",
          "courtroom drama", "spy thriller", "coming of age story", "animated feature", "melodrama")

# Aspects as (determiner, noun phrase, plural). "{det} {noun}" is the definite phrase; the noun also
# appears attributively ("its sluggish pacing", "a superb score").
ASPECTS: tuple[tuple[str, str, bool], ...] = tuple(("the", noun, plural) for noun, plural in (
    ("plot", False), ("story", False), ("script", False), ("screenplay", False), ("writing", False),
    ("dialogue", False), ("acting", False), ("cast", False), ("performances", True),
    ("lead performance", False), ("supporting cast", False), ("score", False),
    ("soundtrack", False), ("music", False), ("pacing", False), ("editing", False),
    ("direction", False), ("cinematography", False), ("visuals", True), ("special effects", True),
    ("production design", False), ("costumes", True), ("sets", True), ("lighting", False),
    ("sound design", False), ("ending", False), ("opening", False), ("first act", False),
    ("second half", False), ("final act", False), ("climax", False), ("premise", False),
    ("characters", True), ("villain", False), ("humor", False), ("jokes", True),
    ("action scenes", True), ("fight choreography", False), ("romance", False),
    ("chemistry between the leads", False), ("world building", False), ("twist", False),
    ("tone", False), ("atmosphere", False), ("camera movement", False), ("color palette", False),
    ("subplot", False), ("flashbacks", True), ("narration", False), ("ensemble", False),
    ("set pieces", True), ("central mystery", False), ("themes", True), ("makeup", False),
    ("location shooting", False), ("car chase", False), ("courtroom scenes", True),
    ("musical numbers", True), ("final scene", False), ("first hour", False),
))
# Uncountable aspects take no article when used attributively ("it has superb acting").
_MASS_NOUNS = frozenset({
    "writing", "dialogue", "acting", "music", "pacing", "editing", "direction", "cinematography",
    "production design", "lighting", "sound design", "humor", "fight choreography", "romance",
    "chemistry between the leads", "world building", "camera movement", "narration", "makeup",
    "location shooting",
})
# Aspects tied to the review's named people: (role, noun).
_NAMED_ASPECTS = (("actor", "performance"), ("actor", "turn as the lead"), ("director", "direction"),
                  ("composer", "score"), ("cinematographer", "camera work"),
                  ("writer", "screenplay"), ("actor2", "supporting performance"))

PROFESSIONS = (
    "a retired detective", "a young nurse", "a disgraced surgeon", "a lighthouse keeper",
    "a ship captain", "a schoolteacher", "a con artist", "a war photographer", "a piano tuner",
    "a translator", "a beekeeper", "a locksmith", "a mapmaker", "a night watchman",
    "a taxi driver", "a marine biologist", "a forger", "a jazz singer", "a fisherman", "a pilot",
    "a chef", "a baker", "a tailor", "a journalist", "a librarian", "a magician", "a boxer",
    "a dancer", "a diplomat", "a priest", "a farmer", "a miner", "a soldier", "a deserter", "a spy",
    "an architect", "an astronaut", "an archivist", "an accountant", "an art thief",
    "an undertaker", "a midwife", "a botanist", "a geologist", "a clockmaker", "a bus driver",
    "a park ranger", "a sheriff", "a bounty hunter", "a mechanic", "a radio host", "a violinist",
    "a chess prodigy", "a lawyer", "a judge", "a mail carrier", "a bookseller", "a gardener",
    "a fortune teller", "a circus acrobat", "a mountaineer", "a shepherd", "a teenage runaway",
    "an aging rock star", "a nervous bank clerk", "a struggling novelist", "a stubborn rancher",
    "a widowed innkeeper", "a former boxer", "a junior diplomat", "a weary police inspector",
)
PLOT_EVENTS = (
    "discovers a hidden letter", "inherits a crumbling hotel", "witnesses a robbery",
    "loses a bet", "receives a mysterious package", "falls for a stranger",
    "returns to a childhood home", "is framed for a murder", "stumbles upon a conspiracy",
    "wakes up in a strange city", "plans one last heist", "tries to save a family bakery",
    "agrees to guide a group of tourists across the desert", "searches for a stolen painting",
    "takes a job at a remote research station", "befriends a lonely boy",
    "uncovers a family secret", "is hired to find a missing heiress",
    "gets stranded on an island", "enters a cooking competition", "joins a traveling circus",
    "runs for mayor", "tracks a serial poisoner", "smuggles refugees across the border",
    "rebuilds a wrecked sailboat", "trains for a marathon", "hides a fugitive in the attic",
    "negotiates a ceasefire", "forges paintings for a gangster",
    "investigates a string of disappearances", "restores an old cinema",
    "opens a bookshop in a small village", "reunites a band", "fights to keep the family farm",
    "cares for an ailing father", "travels across the country by train",
    "chases a rumor of buried treasure", "prepares for a royal wedding",
    "records the songs of a dying language", "crosses the ocean in a small boat",
    "competes in a chess tournament", "finds a baby on the doorstep", "steals a vintage car",
    "starts a pirate radio station", "loses everything in a flood", "wins the lottery",
    "tries to break an ancient curse", "moves in with an estranged brother",
    "sets out to climb a forbidden mountain", "digs up an old grave", "adopts a stray dog",
)
PLOT_VERBS = ("steals", "hides", "finds", "sells", "buries", "guards", "repairs", "smuggles",
              "searches for", "inherits", "paints", "photographs", "forges", "collects", "studies",
              "rescues", "borrows", "mends", "restores", "carries", "trades", "maps", "translates",
              "decodes", "protects", "auctions", "loses", "misplaces", "counterfeits", "catalogs",
              "unearths", "pawns", "polishes", "sketches", "wraps", "describes",
              "returns", "swaps", "raffles", "dismantles", "measures", "weighs", "appraises",
              "engraves", "welds", "tunes", "patches", "varnishes", "smashes", "donates")
PLOT_OBJECTS = (
    "a rare violin", "a stolen diamond", "an old map", "a crate of oranges", "a wounded falcon",
    "a forged passport", "a suitcase full of money", "a box of letters", "a broken clock",
    "a missing manuscript", "a vintage motorcycle", "a jar of seeds", "an abandoned puppy",
    "a golden locket", "a secret recipe", "a roll of film", "a damaged painting", "a coded diary",
    "a ship in a bottle", "a silver revolver", "a bag of rubies", "a tin of photographs",
    "a wedding dress", "a racing pigeon", "a typewriter", "a sealed envelope", "a marble statue",
    "a cassette tape", "a herd of goats", "a dented trumpet", "a lottery ticket", "a pearl necklace",
    "a carved chess set", "a sack of flour", "a telescope", "a fossil", "an antique globe",
)
# Open-ended noun phrases for plot summaries, composed as "{a} {modifier} {noun}".
OBJECT_MODIFIERS = (
    "old", "rusty", "antique", "tiny", "enormous", "battered", "silver", "copper", "velvet",
    "handmade", "secondhand", "leather", "porcelain", "crystal", "bronze", "painted", "cracked",
    "locked", "forgotten", "ancient", "foreign", "stolen", "borrowed", "family", "military",
    "medieval", "miniature", "waterproof", "homemade", "inherited", "embroidered", "folded",
    "scorched", "broken", "jade", "ivory", "tin", "canvas", "brass", "glass",
)
OBJECT_NOUNS = (
    "violin", "map", "compass", "clock", "lantern", "suitcase", "diary", "notebook", "camera",
    "radio", "bicycle", "kettle", "mirror", "ring", "key", "coin", "medal", "brooch", "scarf",
    "umbrella", "trunk", "cello", "accordion", "harmonica", "rifle", "sword", "helmet", "saddle",
    "sextant", "microscope", "ledger", "hymnal", "atlas", "quilt", "tapestry", "vase", "teapot",
    "figurine", "puppet", "music box", "hourglass", "birdcage", "paperweight", "fountain pen",
    "snow globe", "pocket watch", "gramophone", "film reel", "postcard", "telegram", "passport",
    "rowing boat", "canoe", "tractor", "motorcycle", "sewing machine", "anchor", "bell", "crown",
    "chalice", "manuscript", "blueprint", "photograph", "portrait", "recipe book", "fishing rod",
    "harpoon", "lute", "banjo", "tuba", "spinning wheel", "loom", "telescope", "kaleidoscope",
    "chandelier", "candelabra", "rocking horse", "dollhouse", "sleigh", "carriage", "rickshaw",
    "hot air balloon", "submarine", "glider", "wheelbarrow", "anvil", "cauldron", "hammock",
    "parasol", "fan", "wristwatch", "locket", "tiara", "dagger", "shield", "tablet", "scroll",
    "abacus", "metronome", "stethoscope", "barometer", "thermos", "lunchbox", "satchel",
)
PLACE_NOUNS = (
    "attic", "cellar", "lighthouse", "chapel", "orchard", "vineyard", "quarry", "harbor", "pier",
    "boathouse", "greenhouse", "stable", "barn", "mill", "bakery", "laundromat", "pharmacy",
    "observatory", "aquarium", "planetarium", "gymnasium", "ballroom", "courthouse", "prison",
    "monastery", "convent", "embassy", "consulate", "hangar", "shipyard", "warehouse", "cannery",
    "brewery", "distillery", "tannery", "sawmill", "ferry terminal", "bus depot", "signal box",
    "museum", "library", "archive", "cemetery", "hospital", "sanatorium", "circus tent", "casino",
    "marina", "lagoon", "swamp", "glacier", "canyon", "meadow", "cornfield", "rice paddy", "jetty",
    "tramway", "funicular", "aqueduct", "viaduct", "cathedral", "mosque", "synagogue", "pagoda",
    "bazaar", "souk", "arcade", "bowling alley", "roller rink", "skating pond", "fairground",
    "racetrack", "velodrome", "opera house", "bandstand", "crypt", "bell tower", "windmill",
)
PROFESSION_MODIFIERS = (
    "retired", "young", "elderly", "reluctant", "overworked", "exiled", "widowed", "homesick",
    "semiretired", "rookie", "veteran", "small town", "part time", "former", "aspiring",
    "unemployed", "pregnant", "deaf", "blind", "teenage", "middle aged", "disgraced", "itinerant",
)
PROFESSION_NOUNS = (
    "detective", "nurse", "surgeon", "teacher", "pilot", "chef", "baker", "tailor", "journalist",
    "librarian", "magician", "boxer", "dancer", "diplomat", "priest", "farmer", "miner", "soldier",
    "spy", "architect", "astronaut", "archivist", "accountant", "undertaker", "midwife", "botanist",
    "geologist", "clockmaker", "mechanic", "violinist", "lawyer", "judge", "bookseller", "gardener",
    "acrobat", "mountaineer", "shepherd", "innkeeper", "ferryman", "glassblower", "beekeeper",
    "locksmith", "cartographer", "translator", "photographer", "stenographer", "zookeeper",
    "blacksmith", "carpenter", "plumber", "electrician", "firefighter", "paramedic", "lifeguard",
    "sommelier", "jockey", "falconer", "puppeteer", "ventriloquist", "taxidermist", "cobbler",
    "seamstress", "florist", "perfumer", "stonemason", "welder", "surveyor", "auctioneer",
    "pharmacist", "veterinarian", "pastry chef", "tour guide", "crossing guard", "oceanographer",
    "bricklayer", "chimney sweep", "lumberjack", "trapper", "whaler", "goldsmith", "silversmith",
    "engraver", "bookbinder", "typesetter", "projectionist", "usher", "croupier", "bartender",
    "barber", "hairdresser", "masseuse", "optician", "dentist", "chemist", "physicist",
    "mathematician", "astronomer", "meteorologist", "volcanologist", "linguist", "historian",
    "curator", "conductor", "organist", "choirmaster", "lyricist", "screenwriter", "playwright",
)
PLOT_LOCATIONS = (
    "in the basement of a museum", "behind a waterfall", "under the floorboards", "in a frozen lake",
    "on the roof of a cathedral", "at the bottom of the harbor", "inside a piano",
    "in a train station locker", "across three countries", "in the middle of a blizzard",
    "during a solar eclipse", "on the eve of an election", "in a village without electricity",
    "in the back of an ice cream van", "at a funeral", "during a power cut", "in a crowded market",
    "on a night ferry", "at the edge of a volcano", "in a greenhouse", "inside a church organ",
    "under a bridge", "in a lost property office", "at a country wedding", "in a disused mine",
)
PLOT_FOLLOWUPS = (
    "Along the way, {pron} meets {prof} named {name}.",
    "Meanwhile, {name}, {poss} {relative}, {event}.",
    "Things get complicated when {name} {event}.",
    "The story jumps between {period} and the present day.",
    "Most of the film takes place {setting}.",
    "The second half moves to {place}.",
    "{actor2} plays {poss} {relative}.",
    "Soon {pron} is drawn into a feud between two rival families.",
    "The police suspect {name}, who {event}.",
    "Years later, {pron} must decide whether to return to {place}.",
    "It all starts when {name} {event}.",
    "{name} and {poss} {relative} have not spoken in years.",
    "A storm cuts the town off from {place} for a week.",
    "The story is told through letters, diaries and old photographs.",
    "{name} keeps a notebook of everyone who {event}.",
    "The last third follows {name} as {pron} {event}.",
    "Every chapter opens with a title card and a date.",
)
RELATIVES = ("sister", "brother", "mother", "father", "daughter", "son", "grandmother", "uncle",
             "aunt", "cousin", "husband", "wife", "best friend", "business partner", "neighbor",
             "childhood friend", "stepfather", "landlady", "mentor", "old rival")
PLACES = (
    "Port Alder", "Vellmar", "Castrova", "Eastmere", "Oskarsholm", "Bellwater", "Marrowgate",
    "Saint Odile", "Kestrel Bay", "Dunharrow", "Low Ashford", "Veranza", "Talmont", "Brisco",
    "Novy Grad", "Lisbon", "Istanbul", "Marseille", "Naples", "Oslo", "Montreal", "Havana",
    "Lagos", "Mumbai", "Seoul", "Buenos Aires", "Cairo", "Prague", "Vienna", "Glasgow", "Detroit",
    "New Orleans", "Reykjavik", "Tangier", "Valparaiso", "Tbilisi", "Hokkaido", "Patagonia",
    "the Scottish Highlands", "the Atacama desert", "rural Montana", "the Mekong delta",
    "Ravensholm", "Caldera Springs", "Mirefield", "Port Sorrel", "Altamura", "Greywater",
    "Linden Vale", "Saltcombe", "Varenne", "Kilmorrow", "Esterhaven", "Brightwell", "Old Quay",
    "Novaterra", "Hallstrand", "Wicklow Cross", "Zandvoort", "Ostrava", "Marrakesh", "Anchorage",
    "Trieste", "Gdansk", "Antwerp", "Quito", "Hobart", "Tromso", "Dakar", "Zanzibar", "Sapporo",
)
SETTINGS = (
    "in a small fishing village", "on a crowded night train", "in a snowed in mountain lodge",
    "aboard a cargo ship", "in a sprawling desert city", "on a remote island",
    "inside a decaying hotel", "in a boarding school", "in a cramped apartment block",
    "at a roadside motel", "in a mining town", "on a sheep farm", "in a lighthouse",
    "in a hospital ward", "at a seaside resort out of season", "in an abandoned amusement park",
    "in a border town", "on an oil rig", "in a monastery in the mountains", "in a jazz club",
)
PERIODS = ("the nineteen twenties", "the last winter of the war", "a long hot summer",
           "the gold rush", "the early eighties", "the late nineteenth century", "the sixties",
           "the years after the revolution", "the depression years", "the cold war", "the thirties",
           "a single night in december", "the last days of the empire", "the space race")
SOURCES = ("a novel", "a short story", "a stage play", "a comic book", "a true story", "a memoir",
           "a radio drama", "a folk tale", "a newspaper article", "an opera", "a video game")
LANGUAGES = ("French", "Portuguese", "Korean", "Turkish", "Icelandic", "Polish", "Spanish",
             "Japanese", "Italian", "Hungarian", "Swedish", "Greek", "Arabic", "Hindi", "German")
MINUTES = ("ninety", "ninety five", "a hundred", "a hundred and ten", "eighty", "a hundred and thirty")
DURATIONS = ("two hours", "two and a half hours", "three hours", "ninety minutes",
             "an hour and forty minutes", "just under two hours")
FILLERS = (
    "{title} is the {ordinal} feature from director {director}.",
    "{title} was directed by {director} and stars {actor} and {actor2}.",
    "It is based on {source} by {writer}.",
    "The film follows {prof} who {event}.",
    "{actor} plays {prof} who {event}.",
    "It is set in {place} during {period}.",
    "The story takes place {setting} near {place}.",
    "I saw it {when} {where}.",
    "It runs about {minutes} minutes.",
    "The running time is roughly {duration}.",
    "My {relative} suggested we watch it.",
    "It played at the {place} film festival last {season}.",
    "The film is in {language} with subtitles.",
    "{composer} wrote the music.",
    "{writer} adapted the screenplay from {source}.",
    "The cast includes {actor}, {actor2} and {actor3}.",
    "I went in expecting {genre_a}, but it turned out to be {genre_b}.",
    "The trailer sold it as {genre_a}.",
    "It was shot on location in {place} over {season_count} months.",
    "This is the {ordinal} time {director} has worked with {actor}.",
    "I watched it with my {relative} on a {weekday} evening.",
    "{actor} also appeared in {other_title} a few years ago.",
    "It is a remake of {other_title}.",
    "The film opens with {prof} walking along a beach at dawn.",
    "It comes out on streaming next {season}.",
    "{director} cowrote it with {writer}.",
    "Much of it was filmed {setting}.",
    "I had read the book before seeing the film.",
    "The theater was almost empty when I went.",
    "It is the {ordinal} film in the {title} series.",
    "The screening started twenty minutes late.",
    "The projector broke halfway through and we waited in the lobby.",
    "There was a short film before it about {prof} who {event}.",
    "My {relative} fell asleep during the trailers.",
    "We went for noodles afterwards and argued about the title.",
    "I paid {price} dollars for the ticket.",
    "The poster shows {actor} standing in the rain.",
    "The credits list {director} as both producer and editor.",
    "It premiered on television before its cinema release.",
)
_WHEN = ("last weekend", "last night", "on a rainy sunday", "during a long flight", "on opening night",
         "at a late screening", "years ago", "twice this month", "over the holidays", "this morning")
_WHERE = ("at a small arthouse cinema", "at a packed multiplex", "at home", "at a drive in",
          "with my {relative}", "at the {place} film festival", "on a borrowed laptop",
          "at a university film club", "in an outdoor screening")
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")
_SEASONS = ("spring", "summer", "autumn", "winter", "year", "month")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Discourse markers. The reference reader matches these exact (lowercased) strings.
VERDICT_MARKERS = ("Overall,", "In the end,", "All in all,", "On balance,", "In short,",
                   "Ultimately,", "All things considered,", "To sum up,", "Bottom line:",
                   "My verdict:", "Taken as a whole,", "When all is said and done,")
SENTENCE_CONTRASTS = ("But", "However,", "Still,", "Even so,", "That said,", "Nevertheless,",
                      "Yet", "On the other hand,", "Then again,", "Having said that,")
COORD_CONTRASTS = (", but", ", yet", "; however,", ", but then", "; still,")
SUB_LEADING = ("Although", "Though", "Even though", "While", "Whereas")
SUB_TRAILING = (", although", ", even though", ", while")  # not ", though": too often read as "but"
DESPITE_LEADING = ("Despite", "In spite of", "For all")
DESPITE_TRAILING = (", despite", ", in spite of")

# Mixture of review structures (see `_review`). Tuned so that a unigram TF-IDF logistic regression
# lands around 0.7 accuracy while the rule stays exact.
_STRUCTURE_WEIGHTS = {"simple": 0.55, "contrast": 0.22, "verdict": 0.13, "intensity": 0.10}
_P_NEGATE = 0.35  # chance that an evaluative clause is expressed through negation
_P_NEGATE_SIMPLE = 0.15  # single-opinion reviews: mostly plain, the "easy" part bag-of-words gets


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------

def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _sentence(text: str, rng: random.Random) -> str:
    """Capitalise and terminate; '!' is sprinkled independently of sentiment so it carries no signal."""
    return _cap(text) + ("!" if rng.random() < 0.06 else ".")


def _intensifier(rng: random.Random, strength: int) -> str:
    """Modifier string (with trailing space) for intensity tier 1 (weak), 2 (none) or 3 (strong)."""
    if strength == 3:
        return rng.choice(STRONG_INTENSIFIERS) + " "
    if strength == 1:
        return rng.choice(WEAK_INTENSIFIERS) + " "
    return ""


def _random_strength(rng: random.Random) -> int:
    return rng.choice((1, 2, 2, 3, 3))


@dataclass
class _Film:
    """Names shared by all sentences of one review, so that a review talks about one film."""

    title: str
    director: str
    actor: str
    actor2: str
    actor3: str
    composer: str
    writer: str
    cinematographer: str
    genre: str
    character: str

    @classmethod
    def sample(cls, rng: random.Random) -> "_Film":
        def person() -> str:
            return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"

        return cls(title=_title(rng), director=person(), actor=person(), actor2=person(),
                   actor3=person(), composer=person(), writer=person(), cinematographer=person(),
                   genre=rng.choice(GENRES), character=rng.choice(FIRST_NAMES))


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _title(rng: random.Random) -> str:
    form = rng.randrange(6)
    noun, noun2 = rng.choice(TITLE_NOUNS), rng.choice(TITLE_NOUNS)
    if form == 0:
        return f"The {noun}"
    if form == 1:
        return f"The {rng.choice(TITLE_ADJECTIVES)} {noun}"
    if form == 2:
        return f"The {noun} of {rng.choice(PLACES)}"
    if form == 3:
        return f"{rng.choice(FIRST_NAMES)}'s {noun}"
    if form == 4:
        return f"{rng.choice(TITLE_ADJECTIVES)} {_plural(noun)}"
    return f"A {noun} for the {noun2}"


# --------------------------------------------------------------------------------------------------
# Evaluative clauses. Each takes the clause's *effective* polarity (+1/-1) and whether to express it
# through negation (then a word of the opposite polarity is negated).
# --------------------------------------------------------------------------------------------------

def _aspect(rng: random.Random, film: _Film) -> tuple[str, str, bool]:
    """(determiner, noun, plural) for a film aspect; sometimes tied to a named person."""
    if rng.random() < 0.2:
        role, noun = rng.choice(_NAMED_ASPECTS)
        return f"{getattr(film, role)}'s", noun, False
    return rng.choice(ASPECTS)


def _adjective(rng: random.Random, surface: int) -> str:
    return rng.choice(POSITIVE_ADJECTIVES if surface > 0 else NEGATIVE_ADJECTIVES)


_NEGATED_COPULA = ("{cop} not", "{cop} not very", "{cop} not particularly", "{cop} not especially",
                   "{cop} not at all", "{cop} not exactly", "{cop} not really", "{cop}n't",
                   "{cop}n't very", "{cop}n't particularly", "{cop} never", "{cop} never really",
                   "{cop} hardly", "{cop} far from", "{cop} by no means", "{cop} not once")
_NEGATED_JUDGE = ("I would not call {np}", "I wouldn't call {np}", "no one would call {np}",
                  "nobody could call {np}", "I never found {np}", "I did not find {np}",
                  "I didn't find {np}", "I cannot say I found {np}")


def _aspect_clause(rng: random.Random, film: _Film, polarity: int, negate: bool,
                   strength: int, aspect: tuple[str, str, bool] | None = None) -> str:
    """A clause judging one aspect: 'the pacing was utterly sluggish', 'I never found the plot dull'."""
    det, noun, plural = aspect or _aspect(rng, film)
    np_ = f"{det} {noun}"
    surface = -polarity if negate else polarity
    adj = _adjective(rng, surface)
    cop = rng.choice(("were", "are") if plural else ("was", "is"))
    kind = rng.random()
    if negate:
        if kind < 0.55:
            neg = rng.choice(_NEGATED_COPULA).format(cop=cop)
            return f"{np_} {neg} {adj}"
        if kind < 0.75:
            verb = rng.choice(("never felt", "did not feel", "didn't feel", "never seemed",
                               "did not seem", "never once felt"))
            return f"{np_} {verb} {adj}"
        if kind < 0.9 or det != "the":
            return rng.choice(_NEGATED_JUDGE).format(np=np_) + f" {adj}"
        # Attributive: "it does not have a sluggish score".
        subject = rng.choice(("it", "the film", film.title))
        art = "" if plural or noun in _MASS_NOUNS else _article(adj) + " "
        verb = rng.choice(("never offers", "does not have", "doesn't have", "does not offer"))
        return f"{subject} {verb} {art}{adj} {noun}"
    mod = _intensifier(rng, strength)
    if kind < 0.55:
        return f"{np_} {cop} {mod}{adj}"
    if kind < 0.7:
        verb = rng.choice(("felt", "seemed", "came across as", "proved"))
        return f"{np_} {verb} {mod}{adj}"
    if kind < 0.85 or det != "the":
        return f"I found {np_} {mod}{adj}"
    subject = rng.choice(("it", "the film", film.title))
    verb = rng.choice(("has", "offers", "boasts", "comes with"))
    art = "" if plural or noun in _MASS_NOUNS else _article(mod + adj) + " "
    return f"{subject} {verb} {art}{mod}{adj} {noun}"


def _film_clause(rng: random.Random, film: _Film, polarity: int, negate: bool, strength: int) -> str:
    """A clause judging the whole film: 'I did not enjoy it', 'it is hardly worth the ticket'."""
    surface = -polarity if negate else polarity
    subject = rng.choice(("it", "the film", "the movie", film.title, "this one", "the picture"))
    kind = rng.randrange(7 if negate else 8)  # ratings (kind 7) are never negated
    if kind == 7:
        return _rating(rng, polarity)
    if kind == 0:  # "it was an utterly dull thriller"
        adj = _adjective(rng, surface)
        noun = rng.choice([n for n in ("film", "movie", "picture", film.genre, "watch", "experience")
                           if not subject.endswith(n)])
        cop = rng.choice(("was", "is"))
        if negate:
            neg = rng.choice(("not", "hardly", "far from", "by no means", "never", "not really"))
            return f"{subject} {cop} {neg} {_article(adj)} {adj} {noun}"
        mod = _intensifier(rng, strength)
        return f"{subject} {cop} {_article(mod + adj)} {mod}{adj} {noun}"
    if kind == 1:  # "I loved it"
        past, base = rng.choice(_POS_VERBS if surface > 0 else _NEG_VERBS)
        obj = rng.choice(("it", "this film", "the film", film.title, "the whole thing", "the experience"))
        if negate:
            return rng.choice((f"I did not {base} {obj}", f"I didn't {base} {obj}",
                               f"I never {past} {obj}", f"I cannot say I {past} {obj}",
                               f"I can't say I {past} {obj}"))
        adv = {3: rng.choice(("really ", "truly ", "absolutely ", "thoroughly ", "genuinely ")),
               1: rng.choice(("somewhat ", "mildly ", "sort of ", "kind of ")), 2: ""}[strength]
        if strength > 1 and rng.random() < 0.2:  # "I somewhat hated every minute of it" reads oddly
            return f"I {adv}{past} every minute of it"
        return f"I {adv}{past} {obj}{rng.choice(('', '', ' from start to finish'))}"
    if kind == 2:  # verbs with the film as subject: "it never drags"
        third, base = rng.choice(_POS_FILM_VERBS if surface > 0 else _NEG_FILM_VERBS)
        if negate:
            return rng.choice((f"{subject} does not {base}", f"{subject} doesn't {base}",
                               f"{subject} never {third}", f"{subject} never once {third}"))
        adv = {3: rng.choice(("really ", "truly ", "utterly ")), 1: "somewhat ", 2: ""}[strength]
        return f"{subject} {adv}{third}"
    if kind == 3:  # verdict nouns: "it was a real gem", "it was far from a disaster"
        noun = rng.choice(_POS_NOUNS if surface > 0 else _NEG_NOUNS)
        cop = rng.choice(("was", "is"))
        tail = rng.choice(("", "", " to watch", " from start to finish"))
        if negate:
            neg = rng.choice(("not", "never", "hardly", "far from", "by no means", "not exactly"))
            return f"{subject} {cop} {neg} {_article(noun)} {noun}{tail}"
        mod = {3: rng.choice(("real ", "true ", "absolute ", "complete ", "total ")),
               1: rng.choice(("minor ", "small ", "modest ")), 2: ""}[strength]
        return f"{subject} {cop} {_article(mod + noun)} {mod}{noun}{tail}"
    if kind == 4:  # recommendation
        if surface > 0:
            if negate:
                return rng.choice(("I would not recommend it", "I wouldn't recommend it",
                                   "I would never recommend it", "I cannot recommend it",
                                   "I can't recommend it", "I would hardly recommend it"))
            adv = {3: rng.choice(("highly ", "strongly ", "wholeheartedly ")),
                   1: rng.choice(("cautiously ", "mildly ")), 2: ""}[strength]
            who = rng.choice(("", " to anyone", " to my friends", f" to fans of the {film.genre}",
                              " without hesitation"))
            return f"I would {adv}recommend it{who}"
        if negate:
            return rng.choice(("do not skip it", "don't skip it", "I would not skip it",
                               "nobody should skip it"))
        return rng.choice(("skip it", "I would skip it", "you can safely skip it",
                           "I would tell friends to skip it"))
    if kind == 5:  # worth / waste
        cop = rng.choice(("was", "is"))
        if surface > 0:
            what = rng.choice(("watching", "seeing", "your time", "the ticket price", "a look",
                               "the wait", "a rental", "the two hours"))
            if negate:
                neg = rng.choice(("not", "hardly", "not really", "by no means", "never"))
                return f"{subject} {cop} {neg} worth {what}"
            adv = {3: rng.choice(("well ", "absolutely ", "truly ")), 1: "probably ", 2: ""}[strength]
            return f"{subject} {cop} {adv}worth {what}"
        what = rng.choice(("time", "money", "an evening", "two hours", "a perfectly good evening"))
        if negate:
            neg = rng.choice(("not", "hardly", "by no means", "far from", "never"))
            return f"{subject} {cop} {neg} a waste of {what}"
        mod = {3: rng.choice(("complete ", "total ", "colossal ")), 1: "bit of a ", 2: ""}[strength]
        return f"{subject} {cop} a {mod}waste of {what}"
    # kind == 6: regret / adjective about the whole film
    if surface < 0 and rng.random() < 0.5:
        what = rng.choice(("watching it", "seeing it", "buying a ticket", "renting it"))
        if negate:
            return rng.choice((f"I do not regret {what}", f"I don't regret {what}",
                               f"I never regretted {what}", f"I did not regret {what}"))
        return rng.choice((f"I regret {what}", f"I regretted {what}"))
    adj = _adjective(rng, surface)
    cop = rng.choice(("was", "is"))
    if negate:
        neg = rng.choice(_NEGATED_COPULA).format(cop=cop)
        return f"{subject} {neg} {adj}"
    return f"{subject} {cop} {_intensifier(rng, strength)}{adj}"


def _rating(rng: random.Random, polarity: int) -> str:
    """'I would give it seven out of ten': high scores are positive; the middle is never used."""
    if rng.random() < 0.7:
        score = rng.choice(_NUMBERS[6:] if polarity > 0 else _NUMBERS[:4])
        scale = "ten"
    else:
        score = rng.choice(_NUMBERS[3:5] if polarity > 0 else _NUMBERS[:2])
        scale = "five"
        score += " star" if score == "one" else " stars"
    return rng.choice((f"I would give it {score} out of {scale}", f"{score} out of {scale}",
                       f"my rating is {score} out of {scale}", f"I give it {score} out of {scale}"))


def _clause(rng: random.Random, film: _Film, polarity: int, negate: bool | None = None,
            strength: int | None = None, film_share: float = 0.35,
            p_negate: float = _P_NEGATE) -> str:
    """An evaluative clause of the given effective polarity, about an aspect or the whole film."""
    if negate is None:
        negate = rng.random() < p_negate
    if strength is None:
        strength = _random_strength(rng)
    if rng.random() < film_share:
        return _film_clause(rng, film, polarity, negate, strength)
    return _aspect_clause(rng, film, polarity, negate, strength)


def _despite_phrase(rng: random.Random, film: _Film, polarity: int) -> str:
    """Noun phrase for 'despite ...': 'its sluggish pacing', 'Mara Vance's wooden performance'."""
    det, noun, _plural = _aspect(rng, film)
    if det == "the":
        det = rng.choice(("the", "its"))
    return f"{det} {_intensifier(rng, _random_strength(rng))}{_adjective(rng, polarity)} {noun}"


# --------------------------------------------------------------------------------------------------
# Review structures. Each returns a list of sentences whose deciding clause has polarity `polarity`.
# --------------------------------------------------------------------------------------------------

def _contrast(rng: random.Random, film: _Film, polarity: int) -> list[str]:
    """X (overturned) + Y (decides), with the deciding clause marked by the connective."""
    other = _clause(rng, film, -polarity)
    decider = _clause(rng, film, polarity)
    form = rng.randrange(6)
    if form == 0:  # "X, but Y."
        return [_sentence(f"{other}{rng.choice(COORD_CONTRASTS)} {decider}", rng)]
    if form == 1:  # "X. However, Y."
        return [_sentence(other, rng), _sentence(f"{rng.choice(SENTENCE_CONTRASTS)} {decider}", rng)]
    if form == 2:  # "Although X, Y."
        return [_sentence(f"{rng.choice(SUB_LEADING)} {other}, {decider}", rng)]
    if form == 3:  # "Y, even though X."
        return [_sentence(f"{decider}{rng.choice(SUB_TRAILING)} {other}", rng)]
    phrase = _despite_phrase(rng, film, -polarity)
    if form == 4:  # "Despite its dull plot, Y."
        return [_sentence(f"{rng.choice(DESPITE_LEADING)} {phrase}, {decider}", rng)]
    return [_sentence(f"{decider}{rng.choice(DESPITE_TRAILING)} {phrase}", rng)]  # "Y, despite ..."


def _intensity(rng: random.Random, film: _Film, polarity: int) -> list[str]:
    """Two unnegated aspect clauses of opposite polarity; the strongly intensified one decides."""
    first, second = rng.sample(ASPECTS, 2)
    strong = _aspect_clause(rng, film, polarity, False, 3, aspect=first)
    weak = _aspect_clause(rng, film, -polarity, False, 1, aspect=second)
    a, b = (strong, weak) if rng.random() < 0.5 else (weak, strong)
    return [_sentence(f"{a}{rng.choice((', and', ';', ' and'))} {b}", rng)]


def _simple(rng: random.Random, film: _Film, polarity: int) -> list[str]:
    """One to three clauses that all share the review's polarity (each possibly negated)."""
    n_clauses = rng.choice((1, 2, 2, 3, 3))
    clauses = [_clause(rng, film, polarity, p_negate=_P_NEGATE_SIMPLE) for _ in range(n_clauses)]
    if n_clauses > 1 and rng.random() < 0.4:  # join two clauses: "the plot was gripping and I loved it"
        clauses[:2] = [f"{clauses[0]}{rng.choice((' and', ', and', ';'))} {clauses[1]}"]
    if rng.random() < 0.3:  # a score at the end, as many real reviews have
        clauses.append(_rating(rng, polarity))
    return [_sentence(_opinion_prefix(rng, c), rng) for c in clauses]


_OPINION_PREFIXES = ("Honestly,", "Frankly,", "In my opinion,", "For me,", "To my mind,", "Personally,",
                     "If you ask me,", "To be honest,")
_THAT_PREFIXES = ("I have to say", "I must say", "I think", "I felt that", "It seemed to me that")


def _opinion_prefix(rng: random.Random, clause: str) -> str:
    """Sometimes hedge a clause ("Frankly, the plot was dull"); imperatives are left alone."""
    if rng.random() >= 0.25 or clause.startswith(("skip", "do not", "don't", "you ", "my rating")):
        return clause
    if clause.startswith(("I ", "nobody", "no one")):  # "I think I found ..." reads badly
        return f"{rng.choice(_OPINION_PREFIXES)} {clause}"
    return f"{rng.choice(_OPINION_PREFIXES + _THAT_PREFIXES)} {clause}"


def _verdict(rng: random.Random, film: _Film, polarity: int) -> list[str]:
    """Aspect sentences of arbitrary polarity plus a marked verdict sentence that decides."""
    body: list[str] = []
    for _ in range(rng.choice((1, 2, 2, 3))):
        aspect_polarity = rng.choice((-1, 1))
        style = rng.random()
        if style < 0.6:
            clause = _clause(rng, film, aspect_polarity, film_share=0.1)
            body.append(_sentence(_opinion_prefix(rng, clause), rng))
        elif style < 0.85:
            body.extend(_contrast(rng, film, aspect_polarity))
        else:
            body.extend(_intensity(rng, film, aspect_polarity))
    marker = rng.choice(VERDICT_MARKERS)
    style = rng.random()
    if style < 0.65:
        verdict = f"{marker} {_clause(rng, film, polarity, film_share=0.8)}"
    elif style < 0.85:  # a contrast inside the verdict: "Overall, X, but Y."
        other = _clause(rng, film, -polarity, film_share=0.5)
        verdict = f"{marker} {other}{rng.choice(COORD_CONTRASTS)} {_clause(rng, film, polarity)}"
    elif style < 0.9:  # "All in all, seven out of ten."
        verdict = f"{marker} {_rating(rng, polarity)}"
    else:  # fragment: "In short, not a great thriller."
        negate = rng.random() < _P_NEGATE
        adj = _adjective(rng, -polarity if negate else polarity)
        noun = rng.choice(("film", "movie", film.genre, "effort", "picture"))
        if negate:
            verdict = f"{marker} {rng.choice(('not', 'hardly', 'far from'))} {_article(adj)} {adj} {noun}"
        else:
            mod = _intensifier(rng, _random_strength(rng))
            verdict = f"{marker} {_article(mod + adj)} {mod}{adj} {noun}"
    verdict_sentence = _sentence(verdict, rng)
    return [verdict_sentence, *body] if rng.random() < 0.2 else [*body, verdict_sentence]


_STRUCTURES = {"simple": _simple, "contrast": _contrast, "verdict": _verdict, "intensity": _intensity}
_STRUCTURE_NAMES = tuple(_STRUCTURE_WEIGHTS)
_STRUCTURE_PROBS = tuple(_STRUCTURE_WEIGHTS.values())


def _event(rng: random.Random) -> str:
    """A plot event, from a fixed list or composed ("hides a rare violin under the floorboards")."""
    if rng.random() < 0.4:
        return rng.choice(PLOT_EVENTS)
    if rng.random() < 0.4:
        thing = rng.choice(PLOT_OBJECTS)
    else:
        thing = _noun_phrase(rng, OBJECT_MODIFIERS, OBJECT_NOUNS)
    if rng.random() < 0.5:
        where = rng.choice(PLOT_LOCATIONS)
    else:
        preposition = rng.choice(("in", "behind", "under", "near", "outside"))
        where = f"{preposition} the {rng.choice(PLACE_NOUNS)}"
    return f"{rng.choice(PLOT_VERBS)} {thing} {where}"


def _noun_phrase(rng: random.Random, modifiers: tuple[str, ...], nouns: tuple[str, ...]) -> str:
    modifier = rng.choice(modifiers)
    return f"{_article(modifier)} {modifier} {rng.choice(nouns)}"


def _profession(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(PROFESSIONS)
    return _noun_phrase(rng, PROFESSION_MODIFIERS, PROFESSION_NOUNS)


class _LazyFields(dict):
    """Template fields computed on first use, so a filler only spends random draws on its own slots."""

    def __init__(self, factories: dict[str, Callable[[], str]]) -> None:
        super().__init__()
        self._factories = factories

    def __missing__(self, key: str) -> str:
        value = self[key] = self._factories[key]()
        return value


def _filler(rng: random.Random, film: _Film, template: str | None = None) -> str:
    """A neutral sentence about the film or the viewing (no sentiment words)."""
    template = template or rng.choice(FILLERS)

    def genre(exclude: str = "") -> str:
        name = rng.choice([g for g in GENRES if not exclude.endswith(" " + g)])
        return f"{_article(name)} {name}"

    fields = _LazyFields({
        "title": lambda: film.title, "director": lambda: film.director, "actor": lambda: film.actor,
        "actor2": lambda: film.actor2, "actor3": lambda: film.actor3,
        "composer": lambda: film.composer, "writer": lambda: film.writer,
        "ordinal": lambda: rng.choice(_ORDINALS), "source": lambda: rng.choice(SOURCES),
        "prof": lambda: _profession(rng), "event": lambda: _event(rng),
        "place": lambda: rng.choice(PLACES), "period": lambda: rng.choice(PERIODS),
        "setting": lambda: rng.choice(SETTINGS), "when": lambda: rng.choice(_WHEN),
        "minutes": lambda: rng.choice(MINUTES), "duration": lambda: rng.choice(DURATIONS),
        "relative": lambda: rng.choice(RELATIVES),
        "season": lambda: rng.choice(_SEASONS), "language": lambda: rng.choice(LANGUAGES),
        "genre_a": genre, "genre_b": lambda: genre(exclude=fields["genre_a"]),
        "season_count": lambda: rng.choice(("two", "three", "four", "six", "eight")),
        "weekday": lambda: rng.choice(_WEEKDAYS), "other_title": lambda: _title(rng),
        "price": lambda: rng.choice(("eight", "twelve", "fifteen", "twenty", "nine")),
        "where": lambda: rng.choice(_WHERE).format_map(fields),
    })
    return _cap(template.format_map(fields))


def _plot_sentence(rng: random.Random, film: _Film) -> str:
    """A neutral plot-summary sentence (used for the pretraining corpus)."""
    pron, poss = rng.choice((("he", "his"), ("she", "her")))  # singular: templates use 3sg verbs
    name = film.character
    template = rng.choice(PLOT_FOLLOWUPS)
    return _cap(template.format(
        pron=pron, poss=poss, name=name, prof=_profession(rng), event=_event(rng),
        relative=rng.choice(RELATIVES), period=rng.choice(PERIODS), setting=rng.choice(SETTINGS),
        place=rng.choice(PLACES), actor2=film.actor2,
    ))


def _review(rng: random.Random, film: _Film | None = None) -> tuple[list[str], int]:
    """Sentences of one review and its noise-free label (0 negative, 1 positive)."""
    film = film or _Film.sample(rng)
    polarity = rng.choice((-1, 1))  # balanced by construction
    structure = rng.choices(_STRUCTURE_NAMES, weights=_STRUCTURE_PROBS)[0]
    core = _STRUCTURES[structure](rng, film, polarity)
    # Neutral filler around the evaluative block, keeping reviews within 1-6 sentences.
    room = max(0, 6 - len(core))
    n_fill = min(room, rng.choice((0, 1, 1, 2, 2, 3, 3)))
    fillers = [_filler(rng, film, template) for template in rng.sample(FILLERS, n_fill)]
    before = rng.randint(0, n_fill)
    sentences = fillers[:before] + core + fillers[before:]
    return sentences, int(polarity > 0)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------

def generate_reviews(n: int, seed: int, label_noise: float = 0.0) -> pd.DataFrame:
    """n labelled reviews: columns `text` (str) and `label` (int 0/1, see LABEL_NAMES).

    Deterministic for (n, seed, label_noise); uses private RNGs, never global state. The text only
    depends on (n, seed): label noise flips exactly round(label_noise * n) labels chosen by a
    separate seeded RNG, so noisy and clean frames differ in labels only.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    rng = random.Random(f"lmpipe-reviews:{seed}")
    texts, labels = [], []
    for _ in range(n):
        sentences, label = _review(rng)
        texts.append(" ".join(sentences))
        labels.append(label)
    n_flip = round(label_noise * n)
    if n_flip:
        for i in random.Random(f"lmpipe-label-noise:{seed}").sample(range(n), n_flip):
            labels[i] = 1 - labels[i]
    return pd.DataFrame({"text": pd.Series(texts, dtype=object),
                         "label": pd.Series(labels, dtype="int64")})


def generate_corpus(n_documents: int, seed: int) -> list[str]:
    """Unlabelled documents for masked-LM pretraining, 2-8 sentences each.

    About 60% are reviews from the same grammar as `generate_reviews` (both polarities, labels
    dropped, sometimes with a plot summary attached); the rest are neutral descriptive texts (plot
    summaries, production notes). Uses its own RNG stream, so for the same seed the corpus does not
    replay the labelled reviews.
    """
    if n_documents < 0:
        raise ValueError(f"n_documents must be >= 0, got {n_documents}")
    rng = random.Random(f"lmpipe-corpus:{seed}")
    documents = []
    for _ in range(n_documents):
        if rng.random() < 0.6:
            film = _Film.sample(rng)
            sentences, _label = _review(rng, film)
            extra = rng.choice((0, 0, 1, 2, 3))
            if len(sentences) + extra < 2:
                extra = 2 - len(sentences)
            sentences = sentences + [_plot_sentence(rng, film) for _ in range(extra)]
            sentences = sentences[:8]
        else:
            film = _Film.sample(rng)
            n_sent = rng.randint(2, 8)
            sentences = [_filler(rng, film) if rng.random() < 0.4 else _plot_sentence(rng, film)
                         for _ in range(n_sent)]
        documents.append(" ".join(sentences))
    return documents


# --------------------------------------------------------------------------------------------------
# Reference reader: recovers the noise-free label from the text alone (used by the tests).
# --------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_SPLIT_RE = re.compile(r", and |; | and ")
_STRONG_RE = re.compile(r"\b(?:" + "|".join(STRONG_INTENSIFIERS) + r")\b")
_RATING_RE = re.compile(r"\b(" + "|".join(_NUMBERS) + r")(?: stars?)? out of (ten|five)\b")
_WEAK_RE = re.compile(r"\b(?:" + "|".join(WEAK_INTENSIFIERS) + r")\b")


def _lower(markers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m.lower() for m in markers)


def _clause_polarity(clause: str) -> tuple[int, int] | None:
    """(polarity, strength) of a clause, or None if it carries no sentiment word."""
    rating = _RATING_RE.search(clause)
    if rating:
        score = _NUMBERS.index(rating.group(1)) + 1
        return (1 if score / (10 if rating.group(2) == "ten" else 5) > 0.5 else -1), 2
    tokens = _TOKEN_RE.findall(clause)
    hits = [i for i, tok in enumerate(tokens) if tok in LEXICON]
    if not hits:
        return None
    i = hits[0]
    n_neg = sum(tok in NEGATORS or tok.endswith("n't") for tok in tokens[:i])
    polarity = LEXICON[tokens[i]] * (-1) ** n_neg
    strength = 3 if _STRONG_RE.search(clause) else 1 if _WEAK_RE.search(clause) else 2
    return polarity, strength


def _deciding_clauses(sentence: str) -> tuple[list[str], bool]:
    """Clauses of a sentence that survive its connectives, and whether it overrides earlier ones."""
    s = sentence
    override = False
    for marker in _lower(SENTENCE_CONTRASTS):
        if s.startswith(marker + " "):
            s, override = s[len(marker) + 1:], True
            break
    for marker in _lower(SUB_LEADING + DESPITE_LEADING):
        if s.startswith(marker + " "):
            s = s.split(", ", 1)[1]  # main clause follows the subordinate one
            break
    else:
        for marker in _lower(SUB_TRAILING + DESPITE_TRAILING):
            if marker + " " in s:
                s = s.split(marker + " ", 1)[0]
                break
    for marker in _lower(COORD_CONTRASTS):
        if marker + " " in s:
            s = s.rsplit(marker + " ", 1)[1]  # the clause after the last "but" decides
    return _CLAUSE_SPLIT_RE.split(s), override


def _review_sentiment(text: str) -> int:
    """Noise-free label of a generated review, computed from its text (0 negative, 1 positive)."""
    sentences = [s.rstrip(".!?") for s in _SENTENCE_SPLIT_RE.split(text.lower().strip())]
    evaluative = [s for s in sentences
                  if _RATING_RE.search(s) or any(t in LEXICON for t in _TOKEN_RE.findall(s))]
    verdicts = [s for s in evaluative if s.startswith(_lower(VERDICT_MARKERS))]
    if verdicts:  # a marked verdict overrides everything else
        sentence = verdicts[-1]
        marker = next(m for m in _lower(VERDICT_MARKERS) if sentence.startswith(m))
        evaluative = [sentence[len(marker):].strip()]
    clauses: list[str] = []
    for sentence in evaluative:
        deciding, override = _deciding_clauses(sentence)
        clauses = deciding if override else clauses + deciding
    scored = [p for p in map(_clause_polarity, clauses) if p is not None]
    if not scored:
        raise ValueError(f"no evaluative clause in {text!r}")
    polarities = {p for p, _ in scored}
    if len(polarities) == 1:
        return int(polarities.pop() > 0)
    return int(max(scored, key=lambda ps: ps[1])[0] > 0)  # opposing unmarked clauses: strongest wins
