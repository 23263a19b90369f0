"""A model module whose own import is missing: a module whose name starts this one's."""

import user_model_missing  # noqa: F401  (no such module)
