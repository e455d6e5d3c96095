"""Data files the project writes, and the scripts that write them."""
