"""The Textual TUI.  Importing it never imports torch: the model loads on the engine
thread after the first frame is on screen."""
