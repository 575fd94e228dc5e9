"""autoscaler/backtest"""
