"""Your own documents as extract data (no torch): import, teacher labels, review, split, LLaMA-Factory.

* :mod:`~torchtune_ext.data.documents.ingest`: PDFs, images with labels, JSONL, ShareGPT -> pages;
* :mod:`~torchtune_ext.data.documents.label`: a teacher model labels the pages, checked by schema and rules;
* :mod:`~torchtune_ext.data.documents.merge_review`: takes edited review rows back;
* :mod:`~torchtune_ext.data.documents.split`: document-level train/validation/test split;
* :mod:`~torchtune_ext.data.documents.sharegpt`: LLaMA-Factory export (and the ShareGPT reader);
* :mod:`~torchtune_ext.data.documents.rules`: the rules file of the checks;
* :mod:`~torchtune_ext.data.documents.pages` and :mod:`~torchtune_ext.data.documents.render`: the
  pages directory and PDF rendering.

Each tool is ``python -m torchtune_ext.data.documents.<tool> --help``; the whole path is in
``README.md`` here.
"""
