"""Counts the words of stdin: the most frequent first, then the total."""
import sys

import words

counts = words.count(sys.stdin.read())
for word, n in words.most_frequent(counts, 10):
    print(f"{n:6} {word}")
print(f"{sum(counts.values()):6} words in all")
