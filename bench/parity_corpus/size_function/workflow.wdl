version 1.0
workflow w {
  call make
  output {
    Float bytes = size(make.f)
    Float kb = size(make.f, "KB")
    Float both = size([make.f, make.g], "B")
    Float none = size(make.missing)
  }
}
task make {
  command <<< head -c 2048 /dev/zero > f.bin; head -c 100 /dev/zero > g.bin >>>
  output { File f = "f.bin"  File g = "g.bin"  File? missing = "nothing.bin" }
}
