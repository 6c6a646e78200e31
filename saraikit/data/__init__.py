"""data: speech, text and prompts the workbook measures with.

Audio reading and resampling, datasets from Debian speech packages and user
manifests, noise mixing, text normalization, sentence cutting, prompts.

Modules here may import: saraikit.core.
"""
