"""The app's library half: everything the Streamlit pages show that is not layout.

Never imports streamlit, so all of it is tested without a browser.

| module | owns |
|---|---|
| :mod:`.env` | where the checkpoints are, torch threads, what to say when a checkpoint is missing |
| :mod:`.uploads` | any uploaded file → one 64×64 grey image, or a message for the person |
| :mod:`.inputs` | held-out and generated scenes, uploads and drawings as one :class:`~.inputs.InputImage` |
| :mod:`.state` | the view state and the URL (with a notice for every value that cannot be used) |
| :mod:`.analysis` | every network's view of one image |
| :mod:`.wording` | verdicts, goals and network names in words |
| :mod:`.session` | the attack session: configuration, runs, scrub position, play |
| :mod:`.tables` | the tables the pages show (race, Table 1, attack results) |
| :mod:`.live` | a small experiment run live |

The charts are in :mod:`aimeye.figures.app`.
"""
