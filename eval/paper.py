"""Numbers reported in the SAW paper (arXiv 2606.07705), as data, for side-by-side tables.

Scales: BFCL v4 Overall in percent (mean of Non-Live, Live and Multi-Turn, 4 runs each);
summarisation Total on 0-20 (two LLM-judge grades of 0-10, Reddit TL;DR); overhead in percent
of the host method's per-step wall time.
"""

from __future__ import annotations

PAPER_ID = "arXiv 2606.07705"
PAPER_LABEL = f"SAW paper ({PAPER_ID})"

# model -> algorithm -> BFCL v4 Overall (%)
BFCL_OVERALL: dict[str, dict[str, float]] = {
    "Qwen2.5-1.5B-Instruct": {"grpo": 32.55, "grpo_saw": 33.53, "gdpo": 33.82, "gdpo_saw": 34.02},
    "Qwen2.5-3B-Instruct": {"grpo": 36.27, "grpo_saw": 36.35, "gdpo": 35.58, "gdpo_saw": 36.62},
}

# model -> algorithm -> summarisation Total (0-20, LLM judge, TL;DR)
SUMMARIZATION_TOTAL: dict[str, dict[str, float]] = {
    "Qwen2.5-1.5B-Instruct": {"grpo": 18.20, "grpo_saw": 18.80, "gdpo": 18.80, "gdpo_saw": 19.07},
}

# method -> (low, high) extra per-step wall time in % of the host method
OVERHEAD_PERCENT: dict[str, tuple[float, float]] = {
    "saw": (0.9, 2.7),
    "gradient": (158.7, 188.7),
}

# BFCL v4 entries behind the paper's Table 1 (Overall = mean of the three groups)
BFCL_COUNTS: dict[str, int] = {"non_live": 1150, "live": 1381, "multi_turn": 800}
