"""Sentence grammars for the synthetic speech corpus.

The sentences are produced by small hand-written grammars (subjects, verbs, objects,
places and times combined through a handful of templates) driven by a seeded
:class:`numpy.random.Generator`, so a corpus of any size has many distinct sentences
and no copyrighted text. English has the richest grammar (ten templates, several
hundred thousand distinct sentences); German, French and Spanish have two templates
each, enough to give the multilingual corpora varied phone sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LANGUAGES", "sample_sentences"]

_EN_SUBJECTS = (
    "the old farmer",
    "my sister",
    "a young doctor",
    "our neighbour",
    "the tired student",
    "the little girl",
    "your uncle",
    "the busy baker",
    "a quiet painter",
    "the tall sailor",
    "my best friend",
    "the new teacher",
    "a clever fox",
    "the grey cat",
    "the brown dog",
    "the pilot",
    "her grandmother",
    "the mechanic",
    "the gardener",
    "a stranger",
    "the captain",
    "the singer",
    "his cousin",
    "the nurse",
    "the librarian",
    "the fisherman",
    "the shopkeeper",
    "the engineer",
    "a curious child",
    "the mayor",
)
_EN_PLURAL_SUBJECTS = (
    "the children",
    "the twins",
    "my parents",
    "the workers",
    "our guests",
    "the soldiers",
    "the musicians",
    "the tourists",
    "the farmers",
    "the students",
)
# (base form, past tense, third person singular present)
_EN_VERBS = (
    ("carry", "carried", "carries"),
    ("find", "found", "finds"),
    ("paint", "painted", "paints"),
    ("open", "opened", "opens"),
    ("clean", "cleaned", "cleans"),
    ("build", "built", "builds"),
    ("bring", "brought", "brings"),
    ("sell", "sold", "sells"),
    ("buy", "bought", "buys"),
    ("fix", "fixed", "fixes"),
    ("watch", "watched", "watches"),
    ("lose", "lost", "loses"),
    ("borrow", "borrowed", "borrows"),
    ("move", "moved", "moves"),
    ("wash", "washed", "washes"),
    ("hide", "hid", "hides"),
    ("hold", "held", "holds"),
    ("check", "checked", "checks"),
    ("deliver", "delivered", "delivers"),
    ("measure", "measured", "measures"),
    ("pack", "packed", "packs"),
    ("push", "pushed", "pushes"),
    ("pull", "pulled", "pulls"),
    ("drop", "dropped", "drops"),
)
_EN_OBJECTS = (
    "a heavy box",
    "the red bicycle",
    "three green apples",
    "the kitchen window",
    "an old map",
    "the wooden chair",
    "a loaf of bread",
    "the broken clock",
    "a small boat",
    "the garden gate",
    "a silver key",
    "the yellow kite",
    "a basket of eggs",
    "the blue umbrella",
    "a pair of boots",
    "the letters",
    "a warm blanket",
    "the paper lantern",
    "two glass bottles",
    "the piano",
    "a bag of rice",
    "the oak table",
    "a jar of honey",
    "the fishing net",
    "the winter coat",
    "a cup of tea",
    "the bright lamp",
)
_EN_PLACES = (
    "in the kitchen",
    "near the river",
    "at the station",
    "behind the house",
    "on the hill",
    "under the bridge",
    "in the market",
    "by the harbour",
    "at the school",
    "in the forest",
    "on the train",
    "next to the library",
    "in the village square",
    "at the airport",
    "on the balcony",
    "in the garage",
    "across the valley",
    "inside the old church",
)
_EN_TIMES = (
    "this morning",
    "last night",
    "on Monday",
    "every summer",
    "after lunch",
    "before dinner",
    "in the evening",
    "yesterday afternoon",
    "at seven o'clock",
    "next week",
    "during the storm",
    "on Sunday",
    "at midnight",
    "in the spring",
)
_EN_ADJECTIVES = (
    "quiet",
    "bright",
    "cold",
    "noisy",
    "empty",
    "famous",
    "strange",
    "narrow",
    "beautiful",
    "muddy",
    "crowded",
    "peaceful",
    "warm",
    "dark",
    "tiny",
    "enormous",
)
_EN_NOUNS = (
    ("garden", "gardens"),
    ("street", "streets"),
    ("room", "rooms"),
    ("museum", "museums"),
    ("road", "roads"),
    ("beach", "beaches"),
    ("city", "cities"),
    ("lake", "lakes"),
    ("bakery", "bakeries"),
    ("office", "offices"),
    ("park", "parks"),
    ("hotel", "hotels"),
    ("island", "islands"),
    ("tower", "towers"),
)
_EN_NUMBERS = (
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "a hundred",
)
_EN_ADVERBS = (
    "carefully",
    "quickly",
    "slowly",
    "suddenly",
    "quietly",
    "happily",
    "finally",
    "gently",
)


def _pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _english(rng: np.random.Generator) -> str:
    """Draw one English sentence from ten templates."""
    subj, subj2 = _pick(rng, _EN_SUBJECTS), _pick(rng, _EN_SUBJECTS)
    base, past, third = _EN_VERBS[int(rng.integers(len(_EN_VERBS)))]
    base2, past2, _ = _EN_VERBS[int(rng.integers(len(_EN_VERBS)))]
    obj, obj2 = _pick(rng, _EN_OBJECTS), _pick(rng, _EN_OBJECTS)
    place, time = _pick(rng, _EN_PLACES), _pick(rng, _EN_TIMES)
    adj, adj2 = _pick(rng, _EN_ADJECTIVES), _pick(rng, _EN_ADJECTIVES)
    noun, nouns = _EN_NOUNS[int(rng.integers(len(_EN_NOUNS)))]
    template = int(rng.integers(10))
    if template == 0:
        text = f"{subj} {past} {obj} {place}."
    elif template == 1:
        text = f"{subj} will {base} {obj} {time}."
    elif template == 2:
        text = f"did {subj} {base} {obj} {place}?"
    elif template == 3:
        text = f"{time}, {subj} {past} {obj} and {past2} {obj2}."
    elif template == 4:
        adverb = _pick(rng, _EN_ADVERBS)
        text = f"{subj} {adverb} {past} {obj}, because {subj2} {past2} {obj2}."
    elif template == 5:
        text = f"there are {_pick(rng, _EN_NUMBERS)} {adj} {nouns} {place}."
    elif template == 6:
        text = f"{subj} said that {subj2} {third} {obj} {time}."
    elif template == 7:
        text = f"please {base} {obj} {place}, and {base2} {obj2} {time}."
    elif template == 8:
        text = f"the {adj} {noun} {place} was {adj2} {time}."
    else:
        plural = _pick(rng, _EN_PLURAL_SUBJECTS)
        text = f"how many {nouns} did {plural} {base} {time}?"
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class _SimpleGrammar:
    """Subject-verb-object grammar with a time-first variant (two templates)."""

    subjects: tuple[str, ...]
    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    places: tuple[str, ...]
    times: tuple[str, ...]
    verb_second: bool  # German word order: the verb comes right after a fronted time

    def sentence(self, rng: np.random.Generator) -> str:
        subj, verb = _pick(rng, self.subjects), _pick(rng, self.verbs)
        obj, place, time = _pick(rng, self.objects), _pick(rng, self.places), _pick(rng, self.times)
        if int(rng.integers(2)) == 0:
            text = f"{subj} {verb} {obj} {place}."
        elif self.verb_second:
            text = f"{time} {verb} {subj} {obj} {place}."
        else:
            text = f"{time}, {subj} {verb} {obj} {place}."
        return text[0].upper() + text[1:]


_GERMAN = _SimpleGrammar(
    subjects=(
        "der alte Bauer",
        "meine Schwester",
        "ein junger Arzt",
        "unser Nachbar",
        "die kleine Katze",
        "der Lehrer",
        "das Kind",
        "die Malerin",
        "mein Onkel",
        "der Koch",
    ),
    verbs=(
        "sieht",
        "kauft",
        "trägt",
        "findet",
        "malt",
        "öffnet",
        "sucht",
        "repariert",
        "verkauft",
        "bringt",
    ),
    objects=(
        "den roten Ball",
        "einen schweren Koffer",
        "das alte Fahrrad",
        "die blaue Tasche",
        "ein kleines Boot",
        "den Schlüssel",
        "eine Zeitung",
        "das Fenster",
        "den Tisch",
        "einen Apfel",
    ),
    places=(
        "im Garten",
        "am Bahnhof",
        "in der Küche",
        "auf dem Markt",
        "hinter dem Haus",
        "neben der Brücke",
        "im Wald",
        "in der Stadt",
    ),
    times=("heute", "am Morgen", "manchmal", "jeden Sonntag", "am Abend", "im Sommer"),
    verb_second=True,
)
_FRENCH = _SimpleGrammar(
    subjects=(
        "le vieux fermier",
        "ma sœur",
        "un jeune médecin",
        "notre voisin",
        "la petite fille",
        "le professeur",
        "mon oncle",
        "la boulangère",
        "le marin",
        "l'enfant",
    ),
    verbs=(
        "regarde",
        "achète",
        "porte",
        "trouve",
        "peint",
        "ouvre",
        "cherche",
        "répare",
        "vend",
        "apporte",
    ),
    objects=(
        "le ballon rouge",
        "une valise lourde",
        "la vieille bicyclette",
        "un petit bateau",
        "la clé",
        "un journal",
        "la fenêtre",
        "la table",
        "une pomme",
        "le sac bleu",
    ),
    places=(
        "dans le jardin",
        "à la gare",
        "dans la cuisine",
        "au marché",
        "derrière la maison",
        "près du pont",
        "dans la forêt",
        "en ville",
    ),
    times=("aujourd'hui", "le matin", "souvent", "chaque dimanche", "le soir", "en été"),
    verb_second=False,
)
_SPANISH = _SimpleGrammar(
    subjects=(
        "el viejo granjero",
        "mi hermana",
        "un médico joven",
        "nuestro vecino",
        "la niña pequeña",
        "el profesor",
        "mi tío",
        "la panadera",
        "el marinero",
        "el niño",
    ),
    verbs=(
        "mira",
        "compra",
        "lleva",
        "encuentra",
        "pinta",
        "abre",
        "busca",
        "repara",
        "vende",
        "trae",
    ),
    objects=(
        "la pelota roja",
        "una maleta pesada",
        "la bicicleta vieja",
        "un barco pequeño",
        "la llave",
        "un periódico",
        "la ventana",
        "la mesa",
        "una manzana",
        "el bolso azul",
    ),
    places=(
        "en el jardín",
        "en la estación",
        "en la cocina",
        "en el mercado",
        "detrás de la casa",
        "cerca del puente",
        "en el bosque",
        "en la ciudad",
    ),
    times=("hoy", "por la mañana", "a menudo", "cada domingo", "por la noche", "en verano"),
    verb_second=False,
)

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es")
"""Language codes that :func:`sample_sentences` has a grammar for."""

_GRAMMARS = {"de": _GERMAN, "fr": _FRENCH, "es": _SPANISH}


def sample_sentences(language: str, count: int, rng: np.random.Generator) -> list[str]:
    """Draw ``count`` sentences in ``language`` from its grammar.

    Args:
        language: One of :data:`LANGUAGES`.
        count: Number of sentences to draw (repeats are possible but rare for English).
        rng: Source of randomness; the same generator state gives the same sentences.

    Returns:
        The sentences, each capitalised and ending in ``.`` or ``?``.

    Raises:
        ValueError: If ``language`` has no grammar or ``count`` is negative.

    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if language == "en":
        return [_english(rng) for _ in range(count)]
    if language not in _GRAMMARS:
        raise ValueError(f"no sentence grammar for language {language!r}; choose from {LANGUAGES}")
    grammar = _GRAMMARS[language]
    return [grammar.sentence(rng) for _ in range(count)]
