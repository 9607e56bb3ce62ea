"""Entry point of py_pytest targets: runs pytest on the given files."""

import os
import sys

import pytest

if __name__ == '__main__':
  args = ['-p', 'no:cacheprovider']  # the runfiles tree is read-only
  if os.environ.get('XML_OUTPUT_FILE'):
    args.append('--junitxml=' + os.environ['XML_OUTPUT_FILE'])
  sys.exit(pytest.main(args + sys.argv[1:]))
