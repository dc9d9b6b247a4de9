"""The arena: two models answer the same prompts side by side, and the user votes.

``ratings`` turns votes into a leaderboard (pure computation); ``battle`` holds one
battle (two chats, the order shown, the vote) and what reaches the store; ``sides``
reads the command line into the two sides; ``fit`` says whether both fit in memory.
Nothing here imports textual or rich.
"""
