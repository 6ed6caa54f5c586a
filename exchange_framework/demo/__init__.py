"""The demo exchange: its packaged ``exchange.toml``, demo users and a market-maker bot that gives liquidity."""
