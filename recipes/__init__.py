"""Our torchtune recipes, installed as ``torchtune_ext.recipes``.

Run them with torchtune's CLI from any directory, e.g.
``tune run torchtune_ext/recipes/full_finetune_vision.py --config configs/tiny/full_w2_val.yaml``
(see ``recipes/README.md``). The folder is not importable as ``recipes``: that top-level name
belongs to torchtune's wheel.
"""
