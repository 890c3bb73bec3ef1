"""The demo: the seed tutorial's scenario through the real pipeline."""
