"""Turns articles into indexes: normalisation, segmentation, embedding, lexical and vector
indexes, fusion, and the snapshot folder that search serves from."""
