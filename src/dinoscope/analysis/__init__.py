"""Analyses over the object table and its vectors, all reading one shared neighbour graph."""
