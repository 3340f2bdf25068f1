"""BLE wearables: pure byte parsers (Polar PMD, Heart Rate Service) and the bleak-facing connection code."""
