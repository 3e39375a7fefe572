"""Words as tokens, the TV-script project's way: punctuation becomes a token of its own
through TOKEN_LOOKUP ("." -> "||period||", newline -> "||return||") and words are split on
whitespace. The tutorials tokenize with it; the explorer page shows the tokens back as text.
"""
from __future__ import annotations

TOKEN_LOOKUP = {
    ".": "||period||", ",": "||comma||", '"': "||quotation_mark||", ";": "||semicolon||",
    "!": "||exclamation_mark||", "?": "||question_mark||", "(": "||left_parentheses||",
    ")": "||right_parentheses||", "-": "||dash||", ":": "||colon||", "\n": "||return||",
}
_TOKEN_TO_PUNCT = {v: k for k, v in TOKEN_LOOKUP.items()}


def tokenize_words(text, lower=True):
    """'First Citizen:\\nBefore' -> ['first', 'citizen', '||colon||', '||return||', 'before'].
    Each punctuation character becomes a spaced-out token, then the text is split on spaces."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    for punct, token in TOKEN_LOOKUP.items():
        text = text.replace(punct, f" {token} ")
    return text.split()


def detokenize_words(tokens):
    """The inverse, up to whitespace: punctuation glued to the word before it, newlines back."""
    out = []
    for tok in tokens:
        punct = _TOKEN_TO_PUNCT.get(tok)
        if punct is None:
            out.append(("" if not out or out[-1].endswith("\n") else " ") + tok)
        elif punct in "(\"":
            out.append(" " + punct)
        else:
            out.append(punct)
    return "".join(out).strip(" ")


__all__ = ["TOKEN_LOOKUP", "tokenize_words", "detokenize_words"]
