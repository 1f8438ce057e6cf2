"""The models edgesnn ships (edgesnn/data/models), each made here with the project's own trainers.

    python -m tools.models keywords --data data/keywords    # spoken keywords; learns new words
    python -m tools.models glyphs --data data/glyphs        # few-shot glyph learner (event camera)
    python -m tools.models detector --data data/detect      # hybrid SNN-ANN car/pedestrian detector

Each run generates its dataset when the folder is empty, trains, measures the bundle through the
runtime on the held-out split and writes ``edgesnn/data/models/NAME.esnn`` with what it scored in
its producer record (``edgesnn info NAME`` shows it, ``edgesnn models`` lists them).
"""
