"""Satoyama's configuration: one typed settings model, loaded from YAML with
``SATOYAMA_`` environment overrides, and located problems for ``satoyama check-config``.

Reference: ``docs/configuration.md`` (generated from the model by
``python -m gateway.config.reference``). Sample files: ``examples/*.yaml``.
"""

from gateway.config.loader import check_config, default_settings, load_settings
from gateway.config.models import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    CalibrationConfig,
    ClockConfig,
    DeviceConfig,
    InfluxDBSinkConfig,
    MqttSourceConfig,
    PipelineConfig,
    SensorConfig,
    SerialSourceConfig,
    Settings,
    SinksConfig,
    SourcesConfig,
    SqliteSinkConfig,
    TlsConfig,
    ValidationConfig,
)
from gateway.config.problems import ConfigError, ConfigProblem

__all__ = [
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "CalibrationConfig",
    "ClockConfig",
    "ConfigError",
    "ConfigProblem",
    "DeviceConfig",
    "InfluxDBSinkConfig",
    "MqttSourceConfig",
    "PipelineConfig",
    "SensorConfig",
    "SerialSourceConfig",
    "Settings",
    "SinksConfig",
    "SourcesConfig",
    "SqliteSinkConfig",
    "TlsConfig",
    "ValidationConfig",
    "check_config",
    "default_settings",
    "load_settings",
]
