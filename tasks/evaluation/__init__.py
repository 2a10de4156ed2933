"""Evaluation beyond ``model.evaluate``: mean average precision (VOC, COCO) and multi-crop (10-crop)."""
