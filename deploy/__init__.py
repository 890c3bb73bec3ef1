"""How abstream runs: the local Kafka cluster, the topic spec, experiment definitions."""
