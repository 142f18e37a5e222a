"""DevServer: a task typed in Telegram becomes a verified change and a patch series."""
