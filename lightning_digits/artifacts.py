"""The names of what a run leaves in its artifacts folder, spelled once. Plain strings, no imports: the
training side, the reports and the torch-free serving side all read them."""

DEFAULT_DIR = "artifacts_digits"
BEST_STEM = "digits_cnn"  # the best checkpoint by validation loss (the original's name)
FINAL_STEM = "digits_cnn_final"  # the latest state, rewritten every epoch; `--ckpt_path last` resumes from it
BEST_CHECKPOINT = f"{BEST_STEM}.ckpt"
FINAL_CHECKPOINT = f"{FINAL_STEM}.ckpt"
ONNX_MODEL = "digits_cnn.onnx"
PREDICTIONS = "predictions.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_TEXT = "summary.txt"
LOGS = "logs"  # CSV logs, one version_N folder per run; evaluate draws the curves from them
TENSORBOARD = "tensorboard"
