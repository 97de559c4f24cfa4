"""Reports over finished results: comparing two result sets."""
