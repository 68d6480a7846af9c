"""The synthetic vocabulary shared by the server, the tokenizer and the dataset.

Every output token is one word or one punctuation mark of this vocabulary, and the
tokenizer built at image build time splits text the way `token_count` does, so the
client's retokenized output length equals the server's `completion_tokens`.
"""

import hashlib
import random
import re

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
UNK_ID, BOS_ID, EOS_ID, PAD_ID = range(4)
PUNCTUATION = [".", ",", "?", "!", ";", ":"]
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]
# One- and two-syllable pseudo-words: pronounceable, stable, about 5000 of them.
WORDS = _SYLLABLES + [a + b for a in _SYLLABLES for b in _SYLLABLES]
VOCAB = SPECIAL_TOKENS + PUNCTUATION + WORDS
TOKEN_ID = {token: i for i, token in enumerate(VOCAB)}
_FIRST_WORD_ID = len(SPECIAL_TOKENS) + len(PUNCTUATION)

# Same split as the `tokenizers` Whitespace pre-tokenizer used by the image's tokenizer.
_TOKEN_RE = re.compile(r"\w+|[^\w\s]+")


def token_count(text):
    return len(_TOKEN_RE.findall(text))


def stable_seed(*parts):
    """A seed that does not depend on PYTHONHASHSEED."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


class TokenStream:
    """Deterministic "model output": words with a full stop every few tokens.

    Never emits two punctuation marks in a row (they would merge into one token
    when the client retokenizes the text).
    """

    def __init__(self, seed):
        self._rng = random.Random(seed)
        self._since_punct = 0

    def next_token(self):
        """Return (token_id, text_piece); text pieces concatenate to the output text."""
        if self._since_punct >= 3 and self._rng.random() < 0.15:
            self._since_punct = 0
            token = self._rng.choice(PUNCTUATION[:3])
            return TOKEN_ID[token], token
        self._since_punct += 1
        token_id = self._rng.randrange(_FIRST_WORD_ID, len(VOCAB))
        return token_id, " " + VOCAB[token_id]


def sentence(rng, n_tokens):
    """Text of exactly `n_tokens` tokens (for the dataset)."""
    stream = TokenStream(rng.getrandbits(64))
    # Lower case only: a capitalised word would be out of vocabulary.
    return "".join(stream.next_token()[1] for _position in range(n_tokens)).lstrip()
