#!/bin/sh
# Runs tests/bench/clf_compare.py (Plaint's classifier against a TF-IDF + linear SVM baseline on
# the labelled data outside the repository) with a Python that has scikit-learn: $PYTHON if set,
# else Debian's /usr/bin/python3 (python3-sklearn). Options: tests/bench/clf_compare.sh --help.
here=$(dirname "$0")
exec "${PYTHON:-/usr/bin/python3}" "$here/clf_compare.py" "$@"
