"""Config schemas (structured configs), validation and `_target_` instantiation."""
from ae_research.config.schema import register_schemas
from ae_research.config.build import build, validate_config
from ae_research.config.compose import CONFIG_DIR, compose_config

__all__ = ["register_schemas", "build", "validate_config", "CONFIG_DIR", "compose_config"]
