#pragma once
// Where annotated frames and results go: a desktop window, a video file, image files, JSON lines.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "jitvision/core/detection.hpp"

namespace jitvision::io {

// Draws boxes with "name conf" labels (one colour per class) and, when `status` is not empty, a status line (FPS).
// `labels`, when not empty, replaces the label text of each detection (same order); an empty text draws no label.
// `line_thickness` > 0 sets the box lines' width in pixels (0: from the image size).
void draw_detections(cv::Mat& image, const Detections& detections, const std::vector<std::string>& names,
                     const std::string& status = "", const std::vector<std::string>& labels = {},
                     int line_thickness = 0);

// The colour draw_detections uses for a class (BGR), so tests can look for it.
cv::Scalar class_colour(int cls);

// True when a window can be opened (an X11/Wayland display is reachable). Opening one without a display aborts
// the process inside Qt, so this must be asked first.
bool display_available();

// A desktop window (OpenCV highgui, Qt). Create, use and destroy it on one thread.
class Window {
 public:
  // Throws OutputError when no display is available.
  explicit Window(std::string title);
  ~Window();
  // Shows the frame and polls the keyboard; false when the user pressed q/Esc or closed the window.
  bool show(const cv::Mat& image);

 private:
  std::string title_;
};

// Writes frames to a video file; the codec follows the extension (.mp4/.m4v/.mov: mp4v, .avi: MJPG, .mkv: XVID).
// The constructor checks the extension and that the directory is writable (OutputError); the writer opens on the
// first frame, whose size fixes the video's (later frames of another size are scaled). fps <= 0 (unknown) or
// above 240 means 30. close() (also run by the destructor) finalises the file.
class VideoFileSink {
 public:
  VideoFileSink(std::string path, double fps);
  ~VideoFileSink();
  void write(const cv::Mat& image);  // throws OutputError
  // Changes the frame rate until the first frame opens the file (later calls change nothing): for a caller that
  // learns its source's rate only after the sink had to be checked.
  void set_fps(double fps);
  void close();  // throws OutputError
  std::int64_t frames_written() const { return frames_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  double fps_;
  std::int64_t frames_ = 0;
};

// A source's name for the outputs named after it (per-source videos, --save-dir sub-folders, window titles, frame
// images): its file stem or last path part, sanitised to letters, digits, '-' and '_' (at most 40 characters):
// "rtsp://cam/live" -> "live", "/data/clip.mp4" -> "clip", "shots/" -> "shots", a pipeline -> its first words;
// "frame" when nothing is left.
std::string source_stem(const std::string& source);

// Output names that never collide, for every output named after its source (images, videos, sub-folders, windows,
// run-folder labels and crops): the first source to ask for stem + extension gets it; a later one gets a numbered
// name (a.jpg -> a_2.jpg, a_3.jpg; clip -> clip_2), as does a name that `taken_on_disk(name + suffix)` says is
// already used (an earlier run's file). A source keeps its name once given.
class UniqueNames {
 public:
  explicit UniqueNames(std::function<bool(const std::string&)> taken_on_disk = {});
  std::string name_for(const std::string& source, const std::string& stem, const std::string& extension = "",
                       const std::string& suffix = "");

 private:
  std::function<bool(const std::string&)> taken_on_disk_;
  std::map<std::string, std::string> name_of_;  // source -> its name
  std::set<std::string> taken_;
};

// Tiles frames into one image for `--show mosaic`: a grid of ceil(sqrt(n)) columns, each cell `tile` in size with its
// frame letterboxed into it (grey bars) and its label drawn in the top-left corner; an empty frame (none yet) leaves
// its cell black with the label. Frames may differ in size; each must be 8-bit BGR.
cv::Mat tile_mosaic(const std::vector<cv::Mat>& frames, const std::vector<std::string>& labels, cv::Size tile);

// Saves annotated images into a directory: images keep their file name (.pgm and .pbm ones become .png: the
// annotated frame is in colour), video/live frames become
// <source_stem>_<frame, 6 digits>.jpg (names from UniqueNames). When two sources would get the same name (a.jpg from
// two folders, two videos with one stem), the later one gets a numbered name (a_2.jpg, a_3.jpg; clip_2_000001.jpg):
// never an overwrite within a run. A file already in the directory (an earlier run's) is not replaced either: the new
// image gets the next numbered name, unless `overwrite` (--overwrite). The directory is created (throws OutputError
// when it cannot be, or is not writable).
class ImageDirSink {
 public:
  explicit ImageDirSink(std::string dir, bool overwrite = false);
  void write(const cv::Mat& image, const std::string& source, std::int64_t frame, bool single_image);

 private:
  std::string dir_;
  // Without overwrite, a name the directory holds (name + the first frame's number, for a stem) is taken.
  UniqueNames names_;
};

// JSON lines to a file or "-" (stdout); every line is flushed as it is written, so an interrupted run leaves
// complete lines only.
class JsonLinesSink {
 public:
  explicit JsonLinesSink(const std::string& path);  // throws OutputError
  ~JsonLinesSink();
  void write_line(const std::string& json);  // throws OutputError
 private:
  std::FILE* file_ = nullptr;
  bool owned_ = false;
  std::string path_;
};

}  // namespace jitvision::io
