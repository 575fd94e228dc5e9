"""autoscaler/leader"""
