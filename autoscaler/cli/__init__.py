"""autoscaler/cli"""
