"""Recorded market history (LMDB) and the array shapes analytics reads it as."""
