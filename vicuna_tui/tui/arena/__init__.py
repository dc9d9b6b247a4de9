"""The arena's screen: two panes, one input, the vote (``screen``); the round in flight
(``round``); each side's engine and stream (``side``); a pane (``pane``)."""
