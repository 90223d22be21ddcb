"""Word lists of the built-in review generator: the sentiment lexicon, neutral vocabulary and discourse markers.

Everything here is data; `grammar` turns it into sentences. The reference reader in the tests
(tests/builtin_reader.py) reads the labels back with the same lexicon and markers.
"""

from __future__ import annotations

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
POSITIVE_VERBS = (("loved", "love"), ("enjoyed", "enjoy"), ("liked", "like"), ("admired", "admire"),
                  ("adored", "adore"), ("savored", "savor"), ("cherished", "cherish"))
NEGATIVE_VERBS = (("hated", "hate"), ("disliked", "dislike"), ("loathed", "loathe"),
                  ("resented", "resent"), ("despised", "despise"), ("detested", "detest"))
# Verbs with the film as subject: (3rd person singular, base form).
POSITIVE_FILM_VERBS = (("succeeds", "succeed"), ("delivers", "deliver"), ("soars", "soar"),
                       ("satisfies", "satisfy"), ("shines", "shine"))
NEGATIVE_FILM_VERBS = (("fails", "fail"), ("disappoints", "disappoint"), ("misfires", "misfire"),
                       ("drags", "drag"), ("flounders", "flounder"))
# Nouns that carry the verdict: "it was a real gem", "it was far from a disaster".
POSITIVE_NOUNS = ("gem", "masterpiece", "triumph", "joy", "delight", "treat", "pleasure", "marvel")
NEGATIVE_NOUNS = ("mess", "disaster", "letdown", "failure", "chore", "slog", "ordeal", "bore", "dud")
_POS_MISC = ("worth", "recommend")  # "is (not) worth watching", "I would (not) recommend it"
_NEG_MISC = ("waste", "regret", "regretted", "skip")


def _build_lexicon() -> dict[str, int]:
    """Word -> polarity (+1/-1) for every sentiment-bearing word above; a word may have only one."""
    lexicon: dict[str, int] = {}
    for words, polarity in (
        (POSITIVE_ADJECTIVES, 1), (NEGATIVE_ADJECTIVES, -1), (POSITIVE_NOUNS, 1), (NEGATIVE_NOUNS, -1),
        (_POS_MISC, 1), (_NEG_MISC, -1),
        ([w for pair in POSITIVE_VERBS + POSITIVE_FILM_VERBS for w in pair], 1),
        ([w for pair in NEGATIVE_VERBS + NEGATIVE_FILM_VERBS for w in pair], -1),
    ):
        for word in words:
            if lexicon.get(word, polarity) != polarity:
                raise ValueError(f"{word!r} has both polarities")
            lexicon[word] = polarity
    return lexicon


LEXICON: dict[str, int] = _build_lexicon()

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
MASS_NOUNS = frozenset({
    "writing", "dialogue", "acting", "music", "pacing", "editing", "direction", "cinematography",
    "production design", "lighting", "sound design", "humor", "fight choreography", "romance",
    "chemistry between the leads", "world building", "camera movement", "narration", "makeup",
    "location shooting",
})
# Aspects tied to the review's named people: (role, noun).
NAMED_ASPECTS = (("actor", "performance"), ("actor", "turn as the lead"), ("director", "direction"),
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
WHEN = ("last weekend", "last night", "on a rainy sunday", "during a long flight", "on opening night",
        "at a late screening", "years ago", "twice this month", "over the holidays", "this morning")
WHERE = ("at a small arthouse cinema", "at a packed multiplex", "at home", "at a drive in",
         "with my {relative}", "at the {place} film festival", "on a borrowed laptop",
         "at a university film club", "in an outdoor screening")
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")
SEASONS = ("spring", "summer", "autumn", "winter", "year", "month")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

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
