"""The arena's screen: two panes, one input, the vote (``screen``); each side's engine
(``side``); a pane (``pane``)."""
