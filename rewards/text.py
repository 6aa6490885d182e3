"""Text clean-up shared by the rewards: chat markup around a completion, think blocks, labels.

Completions reach the rewards as decoded text. Depending on the rollout engine they may still
carry a chat-template role header (``<|im_start|>assistant\\n``, Llama-3 header ids), an
end-of-turn token (``<|im_end|>``, ``<|endoftext|>``, ``<|eot_id|>``, ``</s>``) and surrounding
whitespace. :func:`strip_chat_markup` removes exactly these, so the rewards compare what the
assistant wrote.
"""

from __future__ import annotations

import re

# A role header at the very start: ChatML (<|im_start|>assistant), Llama 3
# (<|start_header_id|>assistant<|end_header_id|>), or a bare <|assistant|>-style token.
_LEADING_HEADER = re.compile(
    r"\A\s*(?:<\|im_start\|>[^\n<]*\n?|<\|start_header_id\|>[^<]*<\|end_header_id\|>\s*"
    r"|<\|(?:assistant|begin_of_text|startoftext)\|>\s*|<s>\s*)+"
)
# End-of-turn markers: everything from the first one on is not part of the answer.
_END_OF_TURN = re.compile(r"<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|end\|>|</s>")
# Any other special token of the form <|...|>.
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>")
# A leading label a summariser may echo: "TL;DR:", "Summary:", "Summary -".
_LEADING_LABEL = re.compile(r"\A(?:tl\s*;?\s*dr|summary)\s*[:\-]\s*", re.IGNORECASE)


def strip_chat_markup(text: str) -> str:
    """Return ``text`` without a leading role header, anything from the first end-of-turn token
    on, other ``<|...|>`` special tokens, and outer whitespace. Non-strings become ``""``."""
    if not isinstance(text, str):
        return ""
    text = _LEADING_HEADER.sub("", text, count=1)
    end = _END_OF_TURN.search(text)
    if end is not None:
        text = text[: end.start()]
    text = _SPECIAL_TOKEN.sub("", text)
    return text.strip()


def after_think(text: str) -> str:
    """The part of ``text`` after the last ``</think>`` (all of it when there is none)."""
    idx = text.rfind("</think>")
    return text if idx < 0 else text[idx + len("</think>") :]


def summary_text(completion: str) -> str:
    """The summary a completion contains: chat markup stripped (:func:`strip_chat_markup`),
    only the text after a closing ``</think>``, and a leading "TL;DR:"/"Summary:" label
    dropped. This is the text the summarisation rewards score."""
    text = after_think(strip_chat_markup(completion)).strip()
    return _LEADING_LABEL.sub("", text, count=1).strip()
