"""Paper-table reproductions, one module per table (see shiftbench.reproduce)."""
