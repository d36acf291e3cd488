"""Models from files: the TOML model-file format, and resolving the CLI's MODEL argument
(a model file, a saved graph JSON, or `module:function`)."""
from .build import Built, build, load_model_file  # noqa: F401
from .modelfile import ModelFileError, read  # noqa: F401
