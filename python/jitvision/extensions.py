"""The file extensions read as images and as videos: the C++ app's lists (``jitvision --version`` prints them)."""

IMAGE_EXTENSIONS = frozenset({".bmp", ".jp2", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff",
                              ".webp"})
VIDEO_EXTENSIONS = frozenset({".avi", ".flv", ".gif", ".m4v", ".mjpeg", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg",
                              ".ts", ".webm", ".wmv"})
