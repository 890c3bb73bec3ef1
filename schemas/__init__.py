"""The wire contract: ``.avsc`` files are the source of truth; serde and pydantic models mirror them."""
