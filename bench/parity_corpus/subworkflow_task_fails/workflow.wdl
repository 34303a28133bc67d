version 1.0
import "sub.wdl"
workflow w {
  call sub.s
  output { Int x = s.x }
}
