"""``cre report``: an HTML page per video that shows why it got its score.

::

    cre report VIDEO_ID_OR_SOURCE [--out report.html]     # record from Redis (as `cre results`)
    cre report --json results.jsonl [NAME...] [--out DIR]  # records from `cre run --json`
    cre report --index DIR                                  # DIR/index.html lists its reports
    cre run VIDEOS... --report DIR                          # score, then a page per video

From a record to a page, one module a step: :mod:`.records` (records from Redis or a JSON
Lines file) -> :mod:`.examine` (the video re-sampled at the recorded times, faces cropped as
the worker crops them, Grad-CAM, compression measured by :mod:`.inputstats`) ->
:mod:`.evidence` (what a page shows) -> :mod:`.page` with :mod:`.timeline` and
:mod:`.inputs` (the HTML) -> :mod:`.index` (a folder's index page); :mod:`.cli` is the
command. A page shows the verdict, a timeline of frame scores per person track, the
highest-scoring faces of each track with their source frame and heat maps, and how
compressed the input is.
"""
