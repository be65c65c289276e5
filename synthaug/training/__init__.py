"""One training loop (``loop.train``) for every generator; objectives say what is learned."""
