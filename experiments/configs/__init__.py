"""Configurations of `experiments.train`, one `get_config()` per file (for ml_collections' `config_flags`)."""
