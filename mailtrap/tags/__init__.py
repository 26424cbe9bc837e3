"""Tags: their names, the tags a message gets on arrival, and the rules that add more.

:mod:`~mailtrap.tags.names` cleans tag names and keeps one spelling of each
(``Invoice`` and ``invoice`` are one tag); :mod:`~mailtrap.tags.rules` reads
``--tag`` and ``--tags-config``; :mod:`~mailtrap.tags.arrival` gives a new
message its tags from its header fields (``X-Tags``, plus addresses) and the
rules, in the writer process, where its summary is written.
"""
