# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Style checks in the ament manner: copyright headers, flake8, pep257 and package.xml."""

from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_DIRS = ['vggt4d_ros', 'test', 'launch', 'setup.py']
HEADER = (
    '# Copyright 2026 vggt4d_ros developers\n'
    '# SPDX-License-Identifier: Apache-2.0\n'
)


def _python_files():
    files = []
    for entry in PYTHON_DIRS:
        path = ROOT / entry
        files.extend([path] if path.is_file() else sorted(path.rglob('*.py')))
    return files


@pytest.mark.linter
def test_copyright_headers():
    missing = [str(p.relative_to(ROOT)) for p in _python_files()
               if not p.read_text().startswith(HEADER)]
    assert not missing, f'files without the copyright header: {missing}'


@pytest.mark.linter
def test_flake8():
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', *PYTHON_DIRS], cwd=ROOT,
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_pep257():
    result = subprocess.run(
        [sys.executable, '-m', 'pydocstyle', *PYTHON_DIRS], cwd=ROOT,
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_package_xml_is_format_3_ament_python():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'vggt4d_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_depends = {e.text for e in root.findall('exec_depend')}
    for dependency in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'std_msgs',
                       'visualization_msgs', 'diagnostic_msgs', 'tf2_ros', 'tf2_msgs',
                       'cv_bridge', 'sensor_msgs_py', 'message_filters', 'launch',
                       'launch_ros'):
        assert dependency in exec_depends, dependency
    test_depends = {e.text for e in root.findall('test_depend')}
    assert {'ament_copyright', 'ament_flake8', 'ament_pep257', 'python3-pytest'} <= test_depends
