"""Retraining from the field: compare registered versions on the original and the reviewed data.

``edgeinspect pipeline run --dataset BASE --dataset REVIEWED`` trains on the union (the pipeline's
data step); ``edgeinspect registry compare GROUP V1 V2 --dataset BASE --dataset SHIFTED`` then
evaluates each version's registered package on each dataset, side by side (:mod:`.compare`).
"""
