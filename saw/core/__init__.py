"""The bottom layer: a name registry and small utilities, importable without torch.

``rewards/`` and ``rollout/`` import only this part of ``saw``.
"""
