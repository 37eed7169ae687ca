"""Surface authentication building blocks."""
