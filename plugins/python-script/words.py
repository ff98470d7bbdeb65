"""The module wordcount.py imports from its own directory."""
import collections
import re


def count(text):
    return collections.Counter(re.findall(r"[\w'-]+", text.lower()))


def most_frequent(counts, n):
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
