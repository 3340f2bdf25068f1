"""Pure computation shared by serving and training: the chunk, the model contract, filters, ingest,
ring, preprocessing, the inference engine and the built-in models (the shipped student, the spectral
estimator), decoding, tracking, beats, cues and gait, and the message and raw-chunk formats.

Imports nothing of ppg_stream but `ppg_stream.replay` (the rates a recording or source may have):
no asyncio I/O, no transport, no CLI.
"""
